package authn

import (
	"context"
	"testing"
)

// benchFixture: a warmed-up validator and a pool of distinct tokens per algorithm.
func benchFixture(b *testing.B, k *signingKey, pool, cacheSize int) (*Validator, []string) {
	b.Helper()
	clock := newClock()
	p := newIdP(b, idpOpts{}, publicJWK(b, k, nil))
	v, _ := startValidator(b, Config{
		Issuers:   []IssuerConfig{{Issuer: p.issuer, Audiences: []string{testAud}, GroupsClaim: "realm_access.roles"}},
		Now:       clock.Now,
		CacheSize: cacheSize,
	})
	c := claimsFor(p.issuer, clock.Now())
	c["realm_access"] = map[string]any{"roles": []string{"offline_access", "mcp-user", "platform-admins"}}
	toks := make([]string, pool)
	for i := range toks {
		c["jti"] = i
		toks[i] = sign(b, k, c)
	}
	// Warm up keys (and the cache) with the last token: when a benchmark cycles through a
	// pool larger than the cache, it is evicted long before the loop reaches it again.
	if _, err := v.Validate(context.Background(), toks[pool-1]); err != nil {
		b.Fatal(err)
	}
	return v, toks
}

// BenchmarkValidateCached: the same token again and again (hash + cache lookup).
func BenchmarkValidateCached(b *testing.B) {
	v, toks := benchFixture(b, newRSA(b, "bench-rsa", "RS256"), 1, 0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := v.Validate(ctx, toks[0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateCachedParallel(b *testing.B) {
	v, toks := benchFixture(b, newRSA(b, "bench-rsa", "RS256"), 64, 0)
	ctx := context.Background()
	for _, t := range toks {
		_, _ = v.Validate(ctx, t)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.Validate(ctx, toks[i%len(toks)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// benchNew cycles through a pool of distinct tokens larger than the cache, so every
// iteration is a miss: full parse, signature check, claim checks and cache insertion.
func benchNew(b *testing.B, k *signingKey) {
	const pool, cache = 512, 64
	v, toks := benchFixture(b, k, pool, cache)
	ctx := context.Background()
	before := v.verifies.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := v.Validate(ctx, toks[i%pool]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if got := v.verifies.Load() - before; got != int64(b.N) {
		b.Fatalf("%d verifications for %d iterations: tokens were served from the cache", got, b.N)
	}
}

func BenchmarkValidateRS256New(b *testing.B) { benchNew(b, newRSA(b, "bench-rsa", "RS256")) }
func BenchmarkValidatePS256New(b *testing.B) { benchNew(b, newRSA(b, "bench-pss", "PS256")) }
func BenchmarkValidateES256New(b *testing.B) { benchNew(b, newEC(b, "bench-ec")) }
func BenchmarkValidateEdDSANew(b *testing.B) { benchNew(b, newEd(b, "bench-ed")) }

// BenchmarkRejectMalformed: the cost of turning garbage away.
func BenchmarkRejectMalformed(b *testing.B) {
	v, toks := benchFixture(b, newEd(b, "bench-ed"), 1, 0)
	bad := toks[0][:len(toks[0])/2] + "*"
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := v.Validate(ctx, bad); err == nil {
			b.Fatal("accepted")
		}
	}
}
