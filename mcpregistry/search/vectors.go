package search

import (
	"math"
	"slices"
)

// VectorDoc is a document (a server, or one of its tools) with its embedding.
type VectorDoc struct {
	Server, Tool, Description string
	Vector                    []float32 // unit length
}

// Vectors is an immutable set of document embeddings searched by cosine similarity,
// exhaustively: a query costs one dot product per document (at 384 dimensions, ~0.1 ms
// per thousand documents on one core).
type Vectors struct {
	docs []VectorDoc
	dims int
	flat []float32 // the vectors one after the other
}

// NewVectors indexes docs whose vectors have dims dimensions; others are left out.
func NewVectors(docs []VectorDoc, dims int) *Vectors {
	v := &Vectors{dims: dims}
	for _, d := range docs {
		if len(d.Vector) != dims {
			continue
		}
		v.flat = append(v.flat, d.Vector...)
		d.Vector = nil
		v.docs = append(v.docs, d)
	}
	return v
}

// Len returns the number of documents.
func (v *Vectors) Len() int { return len(v.docs) }

// Dims returns the dimension of the vectors.
func (v *Vectors) Dims() int { return v.dims }

// Nearest returns the limit documents most similar to q (unit length), best first;
// Score is the cosine similarity.
func (v *Vectors) Nearest(q []float32, limit int) []Hit {
	if v == nil || len(q) != v.dims || limit <= 0 || len(v.docs) == 0 {
		return nil
	}
	type scored struct {
		i int
		s float32
	}
	top := make([]scored, 0, limit+1)
	worst := float32(math.Inf(-1))
	for i := range v.docs {
		row := v.flat[i*v.dims : (i+1)*v.dims]
		var s float32
		for j, x := range row {
			s += x * q[j]
		}
		if len(top) == limit && s <= worst {
			continue
		}
		at, _ := slices.BinarySearchFunc(top, s, func(e scored, s float32) int {
			if e.s >= s {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, at, scored{i, s})
		if len(top) > limit {
			top = top[:limit]
		}
		if len(top) == limit {
			worst = top[limit-1].s
		}
	}
	out := make([]Hit, len(top))
	for k, t := range top {
		d := v.docs[t.i]
		out[k] = Hit{Server: d.Server, Tool: d.Tool, Description: d.Description, Score: round(float64(t.s))}
	}
	return out
}

// rrfK is reciprocal rank fusion's constant: a document's fused score is the sum over
// the rankings of 1/(rrfK + its rank). 60 is the value of the method's authors
// (Cormack et al., 2009) and what search engines use.
const rrfK = 60

// Fuse merges rankings (best first) by reciprocal rank fusion and returns the best
// limit documents; Score is the fused score. A document is the same in every ranking
// when its server and tool are; ties keep the order of the first ranking.
func Fuse(limit int, rankings ...[]Hit) []Hit {
	type key struct{ server, tool string }
	pos := map[key]int{}
	var out []Hit
	for _, r := range rankings {
		for rank, h := range r {
			k := key{h.Server, h.Tool}
			i, ok := pos[k]
			if !ok {
				i = len(out)
				pos[k] = i
				h.Score = 0
				out = append(out, h)
			}
			out[i].Score += 1 / float64(rrfK+rank+1)
		}
	}
	slices.SortStableFunc(out, func(a, b Hit) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	out = out[:min(limit, len(out))]
	for i := range out {
		out[i].Score = round(out[i].Score)
	}
	return out
}

func round(x float64) float64 { return math.Round(x*1e6) / 1e6 }
