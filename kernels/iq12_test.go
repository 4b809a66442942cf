package kernels

import (
	"math"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

// iq12Types are the formats of this group.
var iq12Types = []gguf.Type{gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S, gguf.TypeIQ1_S, gguf.TypeIQ1_M}

// TestIQ12Dots checks the integer dot of the IQ2/IQ1 formats on ggml's own
// quantized activations, without the Q8_K quantizer: fed act_q_x64 it must
// give dot_x64 bit for bit (ggml's scalar order is kept), fed act_q_simd it
// must be within dotTolerance of dot_simd; it logs the worst relative
// errors against dot_simd for both dot paths.
func TestIQ12Dots(t *testing.T) {
	files := loadVectors(t)
	for _, typ := range iq12Types {
		t.Run(typ.String(), func(t *testing.T) {
			f, err := Lookup(typ)
			if err != nil {
				t.Fatal(err)
			}
			vf := findVectors(t, files, typ)
			var worstSIMD, worstF32 float64
			for _, c := range vf.Cases {
				n, rs := c.PerRow, c.RowSize
				deq := make([]float32, n)
				for r := 0; r < c.Rows; r++ {
					q := c.Quant[r*rs : (r+1)*rs]
					if got := f.Dot(n, q, c.ActX64); math.Float32bits(got) != math.Float32bits(c.DotX64[r]) {
						t.Errorf("%s row %d: dot(act_q_x64) = %g (%#08x), ggml x64 %g (%#08x)", c.Name, r,
							got, math.Float32bits(got), c.DotX64[r], math.Float32bits(c.DotX64[r]))
					}
					scale := absDotScale(f, deq, q, c.Act)
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
					gotF := f.DotF32(q, c.Act)
					eF := math.Abs(float64(gotF)-want) / scale
					if !(eF <= dotTolerance) {
						t.Errorf("%s row %d: f32 dot = %g, want %g (relative error %.3g)", c.Name, r, gotF, want, eF)
					}
					worstF32 = max(worstF32, eF)
				}
			}
			t.Logf("%v: worst relative error dot vs dot_simd %.3g, dotf32 vs float64 %.3g", typ, worstSIMD, worstF32)
		})
	}
}

// TestIQ12Codec checks dequantize and quantize of the IQ2/IQ1 formats
// against ggml (the same checks as TestVectors, without the companion
// Q8_K quantizer).
func TestIQ12Codec(t *testing.T) {
	files := loadVectors(t)
	for _, typ := range iq12Types {
		t.Run(typ.String(), func(t *testing.T) {
			f, err := Lookup(typ)
			if err != nil {
				t.Fatal(err)
			}
			vf := findVectors(t, files, typ)
			for _, c := range vf.Cases {
				n, rs := c.PerRow, c.RowSize
				bad := 0
				for r := 0; r < c.Rows; r++ {
					q := c.Quant[r*rs : (r+1)*rs]
					deq := make([]float32, n)
					f.Dequantize(deq, q)
					if i := firstFloatDiff(deq, c.Dequant[r*n:(r+1)*n]); i >= 0 {
						t.Errorf("%s row %d: dequantize[%d] = %g, ggml %g", c.Name, r, i, deq[i], c.Dequant[r*n+i])
					}
					got := make([]byte, rs)
					f.Quantize(got, c.Src[r*n:(r+1)*n], c.Imatrix)
					if i := firstByteDiff(got, q); i >= 0 {
						bad++
						t.Errorf("%s row %d: quantize byte %d (block %d, offset %d) = %#02x, ggml %#02x", c.Name, r, i,
							i/vf.TypeSize, i%vf.TypeSize, got[i], q[i])
					}
				}
				if bad == 0 {
					t.Logf("%s: %d rows byte-identical", c.Name, c.Rows)
				}
			}
		})
	}
}

func findVectors(t *testing.T, files []*ggqv.File, typ gguf.Type) *ggqv.File {
	t.Helper()
	for _, vf := range files {
		if gguf.Type(vf.TypeID) == typ {
			return vf
		}
	}
	t.Fatalf("no test vectors for %v", typ)
	return nil
}
