package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

// TestKernelReport prints the accuracy columns of kernels/README.md: per
// type, bits per weight, the worst relative error of the integer dot
// against ggml's SIMD result and of the f32 dot against a float64 dot of
// the dequantized row (both relative to sum|w_i*a_i|). Run it with -v.
// It fails when any error exceeds dotTolerance, like TestVectors.
func TestKernelReport(t *testing.T) {
	files := loadVectors(t)
	t.Log("| type | bits/weight | worst dot error vs ggml | worst f32-dot error |")
	for _, vf := range files {
		typ := gguf.Type(vf.TypeID)
		f, err := Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		var dotErr, f32Err float64
		for ci := range vf.Cases {
			c := &vf.Cases[ci]
			if c.Act == nil {
				continue
			}
			d1, d2 := caseErrors(f, c)
			dotErr, f32Err = max(dotErr, d1), max(f32Err, d2)
		}
		bpw := 8 * float64(typ.BlockBytes()) / float64(typ.BlockSize())
		dot := "-"
		if f.Dot != nil && vf.Flags&ggqv.FlagHasVecDot != 0 {
			dot = fmt.Sprintf("%.1e", dotErr)
		}
		f32 := "-"
		if f.DotF32 != nil && vf.Flags&ggqv.FlagHasVecDot != 0 {
			f32 = fmt.Sprintf("%.1e", f32Err)
		}
		t.Logf("| %s | %.4g | %s | %s |", typ, bpw, dot, f32)
		if dotErr > dotTolerance || f32Err > dotTolerance {
			t.Errorf("%v: dot error %.3g / %.3g exceeds %g", typ, dotErr, f32Err, dotTolerance)
		}
	}
}

func caseErrors(f *Format, c *ggqv.Case) (dotErr, f32Err float64) {
	n, rs := c.PerRow, c.RowSize
	deq := make([]float32, n)
	for r := 0; r < c.Rows; r++ {
		q := c.Quant[r*rs : (r+1)*rs]
		scale := absDotScale(f, deq, q, c.Act)
		if f.Dot != nil {
			got := f.Dot(n, q, c.ActSIMD)
			dotErr = max(dotErr, math.Abs(float64(got)-float64(c.DotSIMD[r]))/scale)
		}
		if f.DotF32 != nil && f.Dequantize != nil {
			var want float64
			for i := range deq {
				want += float64(deq[i]) * float64(c.Act[i])
			}
			f32Err = max(f32Err, math.Abs(float64(f.DotF32(q, c.Act))-want)/scale)
		}
	}
	return dotErr, f32Err
}
