package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
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
	gguf.TypeIQ2_XXS: true, gguf.TypeIQ2_XS: true, gguf.TypeIQ2_S: true, gguf.TypeIQ3_XXS: true, gguf.TypeIQ3_S: true,
	gguf.TypeTQ1_0: true, gguf.TypeTQ2_0: true,
	gguf.TypeMXFP4: true, gguf.TypeNVFP4: true, gguf.TypeQ1_0: true, gguf.TypeQ2_0: true,
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

// TestFMALanes checks the lane helpers against ggmlfp.FMA32 on operands
// chosen to hit float32 midpoints, exact ties, cancellations and the
// subnormal range.
func TestFMALanes(t *testing.T) {
	x := uint32(1)
	rnd := func() uint32 { x = x*1664525 + 1013904223; return x }
	val := func() float32 {
		switch rnd() % 6 {
		case 0:
			return 0
		case 1: // tiny
			return math.Float32frombits(rnd()&0x80ffffff | 0x00800000)
		case 2: // small integers
			return float32(int32(rnd()%64) - 32)
		}
		return math.Float32frombits(rnd()&0x807fffff | (0x30+rnd()%0x20)<<23)
	}
	for i := 0; i < 200000; i++ {
		var acc, want [8]float32
		var lanes [8]int32
		var xs [8]float32
		d := val()
		for t := range acc {
			acc[t] = val()
			if rnd()%3 == 0 {
				acc[t] = -d * float32(lanes[t]) // cancellation
			}
			lanes[t] = int32(rnd()%4096) - 2048
			xs[t] = float32(lanes[t])
			want[t] = ggmlfp.FMA32(d, xs[t], acc[t])
		}
		got := acc
		fma8(&got, d, &lanes)
		if got != want {
			t.Fatalf("fma8(%g, %v, %v) = %v, want %v", d, lanes, acc, got, want)
		}
		var a16, y16, w16 [16]float32
		for l := range a16 {
			a16[l], y16[l] = val(), val()
			w16[l] = ggmlfp.FMA32(xs[l%8], y16[l], a16[l])
		}
		var x16 [16]float32
		for l := range x16 {
			x16[l] = xs[l%8]
		}
		fmaLanes16(&a16, &x16, &y16)
		if a16 != w16 {
			t.Fatalf("fmaLanes16: %v, want %v", a16, w16)
		}
	}
}
