package kernels

import (
	"math"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// legacyTypes are the formats of this group that have a dot product.
var legacyTypes = []gguf.Type{
	gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ4_0, gguf.TypeQ4_1,
	gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ8_0,
}

// TestLegacyDotX64 checks that the integer dot keeps ggml's operation
// order bit for bit (checkDotBits: the SIMD build's order for the formats
// in simdExact, the portable x64 build's otherwise). It also logs the
// worst error of both dot paths relative to sum|w_i*a_i|.
func TestLegacyDotX64(t *testing.T) {
	want := map[gguf.Type]bool{}
	for _, typ := range legacyTypes {
		want[typ] = true
	}
	for _, vf := range loadVectors(t) {
		typ := gguf.Type(vf.TypeID)
		if !want[typ] {
			continue
		}
		delete(want, typ)
		f, err := Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		var worstSIMD, worstF32 float64
		rows := 0
		for _, c := range vf.Cases {
			if c.Act == nil {
				continue
			}
			n, rs := c.PerRow, c.RowSize
			deq := make([]float32, n)
			for r := 0; r < c.Rows; r++ {
				q := c.Quant[r*rs : (r+1)*rs]
				rows++
				if err := checkDotBits(f, n, q, &c, r); err != "" {
					t.Errorf("%v/%s row %d: %s", typ, c.Name, r, err)
				}
				scale := absDotScale(f, deq, q, c.Act)
				worstSIMD = max(worstSIMD, math.Abs(float64(f.Dot(n, q, c.ActSIMD))-float64(c.DotSIMD[r]))/scale)
				var exact float64
				for i := range deq {
					exact += float64(deq[i]) * float64(c.Act[i])
				}
				worstF32 = max(worstF32, math.Abs(float64(f.DotF32(q, c.Act))-exact)/scale)
			}
		}
		t.Logf("%-5v %3d rows: dot bit-exact with ggml (simd order: %v); worst relative error: dot vs dot_simd %.3g, dotf32 vs float64 %.3g",
			typ, rows, simdExact[typ], worstSIMD, worstF32)
	}
	for typ := range want {
		t.Errorf("no test vectors for %v", typ)
	}
}

// TestLegacyNoAllocs: dequantize and both dots run per token.
func TestLegacyNoAllocs(t *testing.T) {
	const n = 4096
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	for _, typ := range legacyTypes {
		f, _ := Lookup(typ)
		wb, _ := typ.RowBytes(n)
		w := make([]byte, wb)
		f.Quantize(w, x, nil)
		a := make([]byte, ActivationBytes(f.VecDot, n))
		if err := QuantizeActivation(f.VecDot, a, x); err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, n)
		for name, fn := range map[string]func(){
			"Dequantize": func() { f.Dequantize(dst, w) },
			"Dot":        func() { f.Dot(n, w, a) },
			"DotF32":     func() { f.DotF32(w, x) },
		} {
			if allocs := testing.AllocsPerRun(10, fn); allocs != 0 {
				t.Errorf("%v %s: %v allocations", typ, name, allocs)
			}
		}
	}
}

// TestLegacyConversions pins the C conversions the quantizers rely on at
// the edges ggml's data does not reach: ties, NaN, infinities, saturation.
func TestLegacyConversions(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, tc := range []struct {
		f                 float32
		trunc, away, even int32
	}{
		{2.5, 2, 3, 2},
		{-2.5, -2, -3, -2},
		{3.5, 3, 4, 4},
		{-0.5, 0, -1, 0},
		{126.5, 126, 127, 126},
		{1 << 22, 1 << 22, 1 << 22, 1 << 22},
		{nan, math.MinInt32, math.MinInt32, math.MinInt32},
		{inf, math.MinInt32, math.MinInt32, math.MinInt32},
		{-inf, math.MinInt32, math.MinInt32, math.MinInt32},
		{1 << 31, math.MinInt32, math.MinInt32, math.MinInt32},
		{-(1 << 31), math.MinInt32, math.MinInt32, math.MinInt32},
	} {
		if got := legacyTrunc(tc.f); got != tc.trunc {
			t.Errorf("legacyTrunc(%g) = %d, want %d", tc.f, got, tc.trunc)
		}
		if got := legacyRoundAway(tc.f); got != tc.away {
			t.Errorf("legacyRoundAway(%g) = %d, want %d", tc.f, got, tc.away)
		}
		if got := legacyRoundEven(tc.f); got != tc.even {
			t.Errorf("legacyRoundEven(%g) = %d, want %d", tc.f, got, tc.even)
		}
	}
	if got := legacySat8(math.MinInt32); got != 0x80 {
		t.Errorf("legacySat8(MinInt32) = %#x, want 0x80", got)
	}
	if got := legacySat8(300); got != 0x7f {
		t.Errorf("legacySat8(300) = %#x, want 0x7f", got)
	}
	// NaN in a block: _mm_max_ps keeps its second operand, so the AVX lane
	// reduction drops a NaN met first in its lane and keeps one met last;
	// the reference MAX(amax, |v|) restarts from the element after a NaN.
	x := make([]float32, legacyQK)
	x[3] = nan
	if got := legacyMaxAbsAVX(x); got != 0 {
		t.Errorf("legacyMaxAbsAVX with a NaN at 3 = %g, want 0", got)
	}
	x[3], x[27] = 5, nan
	if got := legacyMaxAbsAVX(x); !math.IsNaN(float64(got)) {
		t.Errorf("legacyMaxAbsAVX with a NaN at 27 = %g, want NaN", got)
	}
	x[28] = 2
	if got := legacyAmax(x); got != 2 {
		t.Errorf("legacyAmax with 5 at 3, NaN at 27, 2 at 28 = %g, want 2", got)
	}
	x[31] = nan
	if got := legacyAmax(x); !math.IsNaN(float64(got)) {
		t.Errorf("legacyAmax with a NaN last = %g, want NaN", got)
	}
}

func TestFP16ToF32Inline(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if got, want := FP16ToF32(uint16(h)), FP16ToF32(uint16(h)); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("FP16ToF32(%#04x) = %#08x, FP16ToF32 %#08x", h, math.Float32bits(got), math.Float32bits(want))
		}
	}
}
