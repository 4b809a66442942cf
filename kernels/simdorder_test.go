package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

// simdExact lists the formats whose Dot reproduces ggml's SIMD vec_dot
// (the sapphirerapids build that llama.cpp runs on the reference machine)
// bit for bit on every row of the test vectors.
var simdExact = map[gguf.Type]bool{
	gguf.TypeQ4_0: true, gguf.TypeQ4_1: true, gguf.TypeQ5_0: true, gguf.TypeQ5_1: true,
	gguf.TypeQ8_0: true, gguf.TypeIQ4_NL: true, gguf.TypeIQ4_XS: true,
	gguf.TypeQ2_K: true, gguf.TypeQ3_K: true, gguf.TypeQ4_K: true, gguf.TypeQ5_K: true, gguf.TypeQ6_K: true,
	gguf.TypeF32: true, gguf.TypeF16: true, gguf.TypeBF16: true,
}

// TestDotSIMDExact checks Dot against dot_simd bit for bit for the formats
// in simdExact and reports the exact-row count of the others.
func TestDotSIMDExact(t *testing.T) {
	for _, vf := range loadVectors(t) {
		typ := gguf.Type(vf.TypeID)
		f, err := Lookup(typ)
		if err != nil || f.Dot == nil {
			continue
		}
		exact, total := 0, 0
		for _, c := range vf.Cases {
			if c.Act == nil {
				continue
			}
			for r := 0; r < c.Rows; r++ {
				q := c.Quant[r*c.RowSize : (r+1)*c.RowSize]
				got := f.Dot(c.PerRow, q, c.ActSIMD)
				total++
				if math.Float32bits(got) == math.Float32bits(c.DotSIMD[r]) {
					exact++
				} else if simdExact[typ] {
					t.Errorf("%v %s row %d: dot %g, ggml SIMD %g", typ, c.Name, r, got, c.DotSIMD[r])
				}
			}
		}
		t.Logf("%-8v %d/%d rows bit-exact with ggml's SIMD vec_dot", typ, exact, total)
	}
}

// checkDotBits compares f.Dot on row r of case c with ggml bit for bit: for
// the formats in simdExact against the SIMD build's vec_dot fed the SIMD
// activation quantization (what llama.cpp runs on x86), for the others
// against the portable x64 build's scalar vec_dot. It returns "" or a
// description of the difference.
func checkDotBits(f *Format, n int, q []byte, c *ggqv.Case, r int) string {
	act, want, build := c.ActX64, c.DotX64[r], "x64"
	if simdExact[f.Type] {
		act, want, build = c.ActSIMD, c.DotSIMD[r], "simd"
	}
	got := f.Dot(n, q, act)
	if math.Float32bits(got) == math.Float32bits(want) {
		return ""
	}
	return fmt.Sprintf("dot(act_q_%s) = %g (%#08x), ggml dot_%s %g (%#08x)", build,
		got, math.Float32bits(got), build, want, math.Float32bits(want))
}
