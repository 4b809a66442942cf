package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

var kqTypes = []gguf.Type{gguf.TypeQ2_K, gguf.TypeQ3_K, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K}

func kqVectorFile(t *testing.T, typ gguf.Type) *ggqv.File {
	t.Helper()
	for _, vf := range loadVectors(t) {
		if gguf.Type(vf.TypeID) == typ {
			return vf
		}
	}
	t.Fatalf("no test vectors for %v", typ)
	return nil
}

// TestKQuantDots checks the k-quant dot products on ggml's own quantized
// activations (so it does not depend on the Q8_K quantizer): Dot must
// reproduce ggml's vec_dot bit for bit (see checkDotBits); fed act_q_simd it
// must be within dotTolerance of dot_simd. It logs the worst relative errors
// of Dot against dot_simd and of DotF32 against a float64 dot.
func TestKQuantDots(t *testing.T) {
	for _, typ := range kqTypes {
		t.Run(typ.String(), func(t *testing.T) {
			vf := kqVectorFile(t, typ)
			f, err := Lookup(typ)
			if err != nil {
				t.Fatal(err)
			}
			var worstSIMD, worstF32 float64
			for _, c := range vf.Cases {
				if c.Act == nil {
					continue
				}
				n, rs := c.PerRow, c.RowSize
				deq := make([]float32, n)
				for r := 0; r < c.Rows; r++ {
					q := c.Quant[r*rs : (r+1)*rs]
					scale := absDotScale(f, deq, q, c.Act)
					if err := checkDotBits(f, n, q, &c, r); err != "" {
						t.Errorf("%s row %d: %s", c.Name, r, err)
					}
					got := f.Dot(n, q, c.ActSIMD)
					e := math.Abs(float64(got)-float64(c.DotSIMD[r])) / scale
					if !(e <= dotTolerance) {
						t.Errorf("%s row %d: dot = %g, ggml %g (relative error %.3g)", c.Name, r, got, c.DotSIMD[r], e)
					}
					worstSIMD = max(worstSIMD, e)
					var want float64
					for i := range deq {
						want += float64(deq[i]) * float64(c.Act[i])
					}
					e = math.Abs(float64(f.DotF32(q, c.Act))-want) / scale
					if !(e <= dotTolerance) {
						t.Errorf("%s row %d: f32 dot relative error %.3g", c.Name, r, e)
					}
					worstF32 = max(worstF32, e)
				}
			}
			t.Logf("%v: worst relative error dot vs dot_simd %.3g, dotf32 vs float64 %.3g", typ, worstSIMD, worstF32)
		})
	}
}

// TestKQuantNoAllocs checks that the per-token kernels do not allocate.
func TestKQuantNoAllocs(t *testing.T) {
	const n = 1024
	for _, typ := range kqTypes {
		f, err := Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		wb, _ := typ.RowBytes(n)
		w := make([]byte, wb)
		a := make([]byte, n/kqBlock*kqQ8Bytes)
		x := make([]float32, n)
		dst := make([]float32, n)
		if got := testing.AllocsPerRun(10, func() {
			f.Dequantize(dst, w)
			sink = f.Dot(n, w, a)
			sink = f.DotF32(w, x)
		}); got != 0 {
			t.Errorf("%v: %v allocations per run", typ, got)
		}
	}
}

// kqQ8Row returns a Q8_K row of n random activations quantized the way
// ggml does (d = max/-127, bsums), built here so that the dot benchmark
// does not depend on the Q8_K format being registered.
func kqQ8Row(rng *rand.Rand, n int) []byte {
	a := make([]byte, n/kqBlock*kqQ8Bytes)
	for i := 0; i < n/kqBlock; i++ {
		y := a[i*kqQ8Bytes : (i+1)*kqQ8Bytes]
		binary.LittleEndian.PutUint32(y, math.Float32bits(float32(0.01+rng.Float64())))
		for j := 0; j < 16; j++ {
			var s int16
			for k := 0; k < 16; k++ {
				q := int8(rng.IntN(255) - 127)
				y[kqQ8QsOff+16*j+k] = byte(q)
				s += int16(q)
			}
			binary.LittleEndian.PutUint16(y[kqQ8BsumsOff+2*j:], uint16(s))
		}
	}
	return a
}

// BenchmarkKQuantDot reports GB/s of weight bytes for the integer dot of
// the k-quants on rows of 4096 (BenchmarkKernels needs the Q8_K format).
func BenchmarkKQuantDot(b *testing.B) {
	const n = 4096
	for _, typ := range kqTypes {
		f, _ := Lookup(typ)
		w, _, _ := benchRow(b, f, n)
		a := kqQ8Row(rand.New(rand.NewPCG(3, 4)), n)
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				sink = f.Dot(n, w, a)
			}
		})
	}
}

// TestKQuantBadInput feeds NaN, Inf, huge and subnormal values to the
// quantizers (with and without an importance matrix) and random bytes with
// NaN/Inf scales to the decoders: nothing may panic, and the quantizers
// must be deterministic.
func TestKQuantBadInput(t *testing.T) {
	const n = 512
	rng := rand.New(rand.NewPCG(5, 6))
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.MaxFloat32, -math.MaxFloat32, 1e-45, -1e-45, 0, float32(math.Copysign(0, -1)), 1e30}
	for _, typ := range kqTypes {
		f, _ := Lookup(typ)
		wb, _ := typ.RowBytes(n)
		for trial := 0; trial < 50; trial++ {
			src := make([]float32, n)
			imat := make([]float32, n)
			for i := range src {
				src[i] = float32(rng.NormFloat64())
				if rng.IntN(4) == 0 {
					src[i] = specials[rng.IntN(len(specials))]
				}
				imat[i] = float32(rng.ExpFloat64())
				if rng.IntN(8) == 0 {
					imat[i] = specials[rng.IntN(len(specials))]
				}
			}
			for _, im := range [][]float32{nil, imat} {
				a, b := make([]byte, wb), make([]byte, wb)
				f.Quantize(a, src, im)
				f.Quantize(b, src, im)
				if i := firstByteDiff(a, b); i >= 0 {
					t.Fatalf("%v: quantize not deterministic at byte %d", typ, i)
				}
			}
			w := make([]byte, wb)
			for i := range w {
				w[i] = byte(rng.Uint32())
			}
			dst := make([]float32, n)
			f.Dequantize(dst, w)
			f.DotF32(w, src)
			f.Dot(n, w, kqQ8Row(rng, n))
		}
	}
}
