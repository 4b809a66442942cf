package synth

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"
)

// BenchmarkGenerate measures drawing and quantizing one llama-7b-wide
// layer (plus a 32000-token vocabulary) in the types make bench uses.
func BenchmarkGenerate(b *testing.B) {
	for _, typ := range []string{"F32", "Q8_0", "Q4_K_M"} {
		b.Run(typ, func(b *testing.B) {
			c, err := Preset("llama-7b")
			if err != nil {
				b.Fatal(err)
			}
			c.Layers = 1
			var rep Report
			for b.Loop() {
				rep, err = Generate(context.Background(), c, Options{Type: typ, Seed: 1}, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(rep.Bytes)
		})
	}
}

// BenchmarkNormals measures the ziggurat sampler.
func BenchmarkNormals(b *testing.B) {
	dst := make([]float32, 4096)
	b.SetBytes(int64(4 * len(dst)))
	for b.Loop() {
		g := newRNG(1, 2, 3)
		g.normals(dst, 1)
	}
}

// BenchmarkNormFloat64 is math/rand/v2's sampler on the same PCG, for
// comparison with BenchmarkNormals.
func BenchmarkNormFloat64(b *testing.B) {
	dst := make([]float32, 4096)
	b.SetBytes(int64(4 * len(dst)))
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		for i := range dst {
			dst[i] = float32(r.NormFloat64())
		}
	}
}
