package search

import (
	"math"
	"slices"
	"testing"
)

func unitVec(xs ...float32) []float32 {
	var s float64
	for _, x := range xs {
		s += float64(x * x)
	}
	for i := range xs {
		xs[i] /= float32(math.Sqrt(s))
	}
	return xs
}

func TestVectorsNearest(t *testing.T) {
	vs := NewVectors([]VectorDoc{
		{Server: "a", Tool: "x", Vector: unitVec(1, 0, 0)},
		{Server: "a", Tool: "y", Vector: unitVec(1, 1, 0)},
		{Server: "b", Vector: unitVec(0, 0, 1)},
		{Server: "c", Tool: "short", Vector: unitVec(1, 0)}, // another dimension: left out
	}, 3)
	if vs.Len() != 3 {
		t.Fatalf("%d documents", vs.Len())
	}
	hits := vs.Nearest(unitVec(1, 0.2, 0), 2)
	if len(hits) != 2 || hits[0].Tool != "x" || hits[1].Tool != "y" || hits[0].Score <= hits[1].Score {
		t.Fatalf("%+v", hits)
	}
	if vs.Nearest(unitVec(1, 0), 2) != nil {
		t.Fatal("a query of another dimension matched")
	}
	var none *Vectors
	if none.Nearest(unitVec(1, 0, 0), 3) != nil {
		t.Fatal("nil set")
	}
}

func TestFuse(t *testing.T) {
	lex := []Hit{{Server: "s", Tool: "a"}, {Server: "s", Tool: "b"}, {Server: "s", Tool: "c"}}
	sem := []Hit{{Server: "s", Tool: "c"}, {Server: "s", Tool: "d"}, {Server: "s", Tool: "a"}}
	got := Fuse(3, lex, sem)
	var names []string
	for _, h := range got {
		names = append(names, h.Tool)
	}
	// a: 1/61 + 1/63, c: 1/63 + 1/61 (tie: first ranking's order), b: 1/62, d: 1/62.
	if !slices.Equal(names, []string{"a", "c", "b"}) {
		t.Fatalf("fused %v", names)
	}
	if want := math.Round((1.0/61+1.0/63)*1e6) / 1e6; got[0].Score != want {
		t.Fatalf("score %v, want %v", got[0].Score, want)
	}
	if len(Fuse(10, lex, nil)) != 3 {
		t.Fatal("one ranking alone")
	}
}

// BenchmarkVectorsNearest: one query against 10,000 documents of 384 dimensions.
func BenchmarkVectorsNearest(b *testing.B) {
	const n, dims = 10000, 384
	docs := make([]VectorDoc, n)
	x := uint32(1)
	next := func() float32 { x = x*1664525 + 1013904223; return float32(x>>8)/(1<<24) - 0.5 }
	for i := range docs {
		v := make([]float32, dims)
		for j := range v {
			v[j] = next()
		}
		docs[i] = VectorDoc{Server: "s", Tool: "t", Vector: unitVec(v...)}
	}
	vs := NewVectors(docs, dims)
	q := slices.Clone(docs[0].Vector)
	q = unitVec(q...)
	for b.Loop() {
		vs.Nearest(q, 50)
	}
}
