package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// quantInputs returns activation rows that exercise the quantizers: normal
// data, all zeros, ties, a NaN, infinities, huge and tiny values.
func quantInputs(rng *rand.Rand, n int) [][]float32 {
	var rows [][]float32
	mk := func(f func(i int) float32) {
		x := make([]float32, n)
		for i := range x {
			x[i] = f(i)
		}
		rows = append(rows, x)
	}
	mk(func(int) float32 { return float32(rng.NormFloat64()) })
	mk(func(int) float32 { return float32(rng.NormFloat64() * 1e-30) })
	mk(func(int) float32 { return 0 })
	mk(func(i int) float32 { return float32(i%255) - 127 + 0.5 })
	mk(func(i int) float32 {
		if i%37 == 5 {
			return float32(math.NaN())
		}
		return float32(rng.NormFloat64())
	})
	mk(func(i int) float32 {
		if i%41 == 3 {
			return float32(math.Inf(1 - 2*(i%2)))
		}
		return float32(rng.NormFloat64())
	})
	mk(func(i int) float32 {
		if i%64 < 32 {
			return 0
		}
		return float32(rng.NormFloat64() * 3e38)
	})
	mk(func(i int) float32 { // equal magnitudes of both signs: the first wins
		if i%7 == 0 {
			return -5
		}
		if i%7 == 3 {
			return 5
		}
		return float32(rng.NormFloat64())
	})
	return rows
}

// TestQuantizers checks every assembly activation quantizer against the
// pure-Go one byte for byte (NaN block scales compare as NaN).
func TestQuantizers(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	any := false
	for typ, vs := range quantVariants {
		for _, v := range vs {
			any = true
			f, _ := Lookup(gguf.Type(typ))
			t.Run(v.typ.String()+"/"+v.isa, func(t *testing.T) {
				for _, n := range []int{256, 512, 4096, 11008 / 32 * 32} {
					if n%v.typ.BlockSize() != 0 {
						continue
					}
					for ri, x := range quantInputs(rng, n) {
						rb, _ := v.typ.RowBytes(n)
						want, got := make([]byte, rb), make([]byte, rb)
						quantizeCPU(f, want, x)
						v.fn(got, x)
						if i := quantDiff(v.typ, got, want); i >= 0 {
							t.Fatalf("n=%d input %d: byte %d = %#02x, pure Go %#02x", n, ri, i, got[i], want[i])
						}
					}
				}
			})
		}
	}
	if !any {
		t.Skip("no assembly quantizers in this build")
	}
}

// quantDiff returns the first differing byte, treating two NaN block
// scales as equal.
func quantDiff(t gguf.Type, a, b []byte) int {
	bb := t.BlockBytes()
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		off := i % bb
		blk := i - off
		switch {
		case t == gguf.TypeQ8_K && off < 4:
			x := math.Float32frombits(uint32(a[blk]) | uint32(a[blk+1])<<8 | uint32(a[blk+2])<<16 | uint32(a[blk+3])<<24)
			y := math.Float32frombits(uint32(b[blk]) | uint32(b[blk+1])<<8 | uint32(b[blk+2])<<16 | uint32(b[blk+3])<<24)
			if x != x && y != y {
				continue
			}
		case t == gguf.TypeQ8_0 && off < 2:
			x := FP16ToF32(uint16(a[blk]) | uint16(a[blk+1])<<8)
			y := FP16ToF32(uint16(b[blk]) | uint16(b[blk+1])<<8)
			if x != x && y != y {
				continue
			}
		}
		return i
	}
	return -1
}

// BenchmarkQuantize measures the activation quantizers on a 4096-wide row
// (GB/s of f32 input).
func BenchmarkQuantize(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, typ := range []gguf.Type{gguf.TypeQ8_0, gguf.TypeQ8_K} {
		f, _ := Lookup(typ)
		rb, _ := typ.RowBytes(len(x))
		dst := make([]byte, rb)
		b.Run(typ.String()+"/go", func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				quantizeCPU(f, dst, x)
			}
		})
		for _, v := range quantVariants[typ] {
			b.Run(typ.String()+"/"+v.isa, func(b *testing.B) {
				b.SetBytes(int64(4 * len(x)))
				for b.Loop() {
					v.fn(dst, x)
				}
			})
		}
	}
}
