package kernels

import (
	"math"
	"path/filepath"
	"sort"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

// loadVectors returns every ggml test-vector file, skipping the test when
// ../shared/testdata/quants is not beside the repository.
func loadVectors(t testing.TB) []*ggqv.File {
	t.Helper()
	dir := ggqv.Dir()
	if dir == "" {
		t.Skip("../shared/testdata/quants not found: ggml test vectors are needed for this test")
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.ggqv"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .ggqv files in %s (%v)", dir, err)
	}
	sort.Strings(paths)
	var out []*ggqv.File
	for _, p := range paths {
		f, err := ggqv.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

// dotTolerance bounds |ours-ggml| relative to sum|w_i*a_i| for the integer
// dot path against ggml's SIMD results.
const dotTolerance = 1e-5

// TestVectors checks every format against ggml's own output: dequantize
// and quantize bit for bit, activation quantization bit for bit, and both
// dot paths within dotTolerance.
func TestVectors(t *testing.T) {
	for _, vf := range loadVectors(t) {
		typ := gguf.Type(vf.TypeID)
		t.Run(typ.String(), func(t *testing.T) {
			f, err := Lookup(typ)
			if err != nil {
				t.Fatalf("no kernels for %v: %v", typ, err)
			}
			if typ.BlockSize() != vf.BlockSize || typ.BlockBytes() != vf.TypeSize {
				t.Fatalf("layout %d/%d, ggml says %d/%d", typ.BlockSize(), typ.BlockBytes(), vf.BlockSize, vf.TypeSize)
			}
			for _, c := range vf.Cases {
				t.Run(c.Name, func(t *testing.T) { checkCase(t, vf, f, &c) })
			}
		})
	}
}

func checkCase(t *testing.T, vf *ggqv.File, f *Format, c *ggqv.Case) {
	n, rs := c.PerRow, c.RowSize
	for r := 0; r < c.Rows; r++ {
		src := c.Src[r*n : (r+1)*n]
		q := c.Quant[r*rs : (r+1)*rs]
		if c.Dequant != nil {
			if f.Dequantize == nil {
				t.Fatalf("ggml dequantizes %v but we do not", f.Type)
			}
			got := make([]float32, n)
			f.Dequantize(got, q)
			if i := firstFloatDiff(got, c.Dequant[r*n:(r+1)*n]); i >= 0 {
				t.Errorf("row %d: dequantize[%d] = %g (%#08x), ggml %g (%#08x)", r, i,
					got[i], math.Float32bits(got[i]), c.Dequant[r*n+i], math.Float32bits(c.Dequant[r*n+i]))
			}
		}
		if f.Quantize == nil {
			t.Fatalf("no quantizer for %v", f.Type)
		}
		got := make([]byte, rs)
		f.Quantize(got, src, c.Imatrix)
		if i := firstByteDiff(got, q); i >= 0 {
			t.Errorf("row %d: quantize byte %d (block %d) = %#02x, ggml %#02x", r, i, i/vf.TypeSize, got[i], q[i])
		}
		if c.QuantCPU != nil {
			cpu := make([]byte, rs)
			quantizeCPU(f, cpu, src)
			// IQ4_NL's CPU quantizer leaves the index bytes of leading all-zero
			// blocks to stack garbage (they decode to +-0): iq4CPUDiff skips them.
			if i := iq4CPUDiff(f.Type, cpu, c.QuantCPU[r*rs:(r+1)*rs], src); i >= 0 {
				t.Errorf("row %d: CPU quantize byte %d = %#02x, ggml %#02x", r, i, cpu[i], c.QuantCPU[r*rs+i])
			}
		}
	}
	if c.Act == nil {
		return
	}
	vd, err := Lookup(f.VecDot)
	if err != nil || int32(f.VecDot) != vf.VecDotType {
		t.Fatalf("companion type %v (ggml: %d): %v", f.VecDot, vf.VecDotType, err)
	}
	actRef := make([]byte, c.ActRowSize)
	vd.Quantize(actRef, c.Act, nil)
	if i := firstByteDiff(actRef, c.ActRef); i >= 0 {
		t.Errorf("reference activation quantize byte %d = %#02x, ggml %#02x", i, actRef[i], c.ActRef[i])
	}
	actCPU := make([]byte, c.ActRowSize)
	quantizeCPU(vd, actCPU, c.Act)
	if i := firstByteDiff(actCPU, c.ActSIMD); i >= 0 {
		t.Errorf("CPU activation quantize byte %d = %#02x, ggml %#02x", i, actCPU[i], c.ActSIMD[i])
	}
	deq := make([]float32, n)
	for r := 0; r < c.Rows; r++ {
		q := c.Quant[r*rs : (r+1)*rs]
		scale := absDotScale(f, deq, q, c.Act)
		got := f.Dot(n, q, c.ActSIMD)
		if e := math.Abs(float64(got)-float64(c.DotSIMD[r])) / scale; !(e <= dotTolerance) {
			t.Errorf("row %d: dot = %g, ggml %g (relative error %.3g)", r, got, c.DotSIMD[r], e)
		}
		if f.DotF32 != nil && f.Dequantize != nil {
			var want float64
			for i := range deq {
				want += float64(deq[i]) * float64(c.Act[i])
			}
			got := f.DotF32(q, c.Act)
			if e := math.Abs(float64(got)-want) / scale; !(e <= dotTolerance) {
				t.Errorf("row %d: f32 dot = %g, want %g (relative error %.3g)", r, got, want, e)
			}
		}
	}
}

// absDotScale returns sum|w_i*a_i| over the dequantized row (at least the
// smallest normal float so that all-zero rows compare absolutely).
func absDotScale(f *Format, deq []float32, q []byte, act []float32) float64 {
	s := 0.0
	if f.Dequantize != nil {
		f.Dequantize(deq, q)
		for i := range deq {
			s += math.Abs(float64(deq[i]) * float64(act[i]))
		}
	}
	return max(s, 1e-30)
}

func firstFloatDiff(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

func firstByteDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
