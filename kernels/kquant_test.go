package kernels

import (
	"math"
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
