package ggmlfp

import (
	"math"
	"testing"
)

func TestSincosfGlibc(t *testing.T) {
	for _, v := range sincosfVectors {
		x := math.Float32frombits(v[0])
		s, c := Sincosf(x)
		if math.Float32bits(s) != v[1] || math.Float32bits(c) != v[2] {
			t.Errorf("Sincosf(%g) = %g, %g; glibc %g, %g", x, s, c,
				math.Float32frombits(v[1]), math.Float32frombits(v[2]))
		}
	}
}

func TestExpfGlibc(t *testing.T) {
	for _, v := range expfVectors {
		x := math.Float32frombits(v[0])
		if got := Expf(x); math.Float32bits(got) != v[1] {
			t.Errorf("Expf(%g) = %g (%#08x), glibc %g (%#08x)", x, got, math.Float32bits(got),
				math.Float32frombits(v[1]), v[1])
		}
	}
}

func TestFMA32(t *testing.T) {
	f := math.Float32frombits
	for _, c := range []struct{ a, b, c, want uint32 }{
		// float64 rounding lands on a float32 midpoint (2^30+192) the
		// exact value (2^30+192-2^-40) is below: naive double rounding
		// gives 0x4e800002.
		{0x41000001, 0x40fffffe, 0x4e800001, 0x4e800001},
		// an exact tie rounds to even
		{0x3f800000, 0x33800000, 0x3f800000, 0x3f800000}, // 1 + 2^-24 -> 1
		{0x3f800000, 0x33800000, 0x3f800001, 0x3f800002},
		// exact cancellation gives +0
		{0x3f800000, 0x3f800000, 0xbf800000, 0x00000000},
		// subnormal result
		{0x00800000, 0x3f000000, 0x00000000, 0x00400000},
	} {
		if got := FMA32(f(c.a), f(c.b), f(c.c)); math.Float32bits(got) != c.want {
			t.Errorf("FMA32(%#x, %#x, %#x) = %#x, want %#x", c.a, c.b, c.c, math.Float32bits(got), c.want)
		}
	}
	// Against float64 FMA where that cannot double-round (results away
	// from float32 midpoints agree with a single rounding).
	x := uint32(12345)
	next := func() float32 {
		x = x*1664525 + 1013904223
		return math.Float32frombits(x>>9 | (x&0x7f)<<23&0x3f800000 | 0x30000000)
	}
	for i := 0; i < 100000; i++ {
		a, b, c := next(), next(), -next()
		s := math.FMA(float64(a), float64(b), float64(c))
		if math.Float64bits(s)&0x1fffffff == 0x10000000 {
			continue
		}
		if got := FMA32(a, b, c); got != float32(s) {
			t.Fatalf("FMA32(%g, %g, %g) = %g, want %g", a, b, c, got, float32(s))
		}
	}
}

// TestVExpf checks ggml_v_expf's special cases and that it stays within
// 2 ulp of exp (its documented error is 1.45 ulp + rounding).
func TestVExpf(t *testing.T) {
	if VExpf(float32(math.Inf(-1))) != 0 || VExpf(-200) != 0 || !math.IsInf(float64(VExpf(200)), 1) || VExpf(0) != 1 {
		t.Errorf("special cases: %g %g %g %g", VExpf(float32(math.Inf(-1))), VExpf(-200), VExpf(200), VExpf(0))
	}
	for x := float32(-87); x < 88; x += 0.0137 {
		got, want := VExpf(x), float32(math.Exp(float64(x)))
		if d := math.Abs(float64(int64(math.Float32bits(got)) - int64(math.Float32bits(want)))); d > 2 {
			t.Fatalf("VExpf(%g) = %g, exp %g (%v ulp)", x, got, want, d)
		}
	}
}

func TestReduce(t *testing.T) {
	// 2^24 + 1 + 1 - 2^24 depends on the order: the tree adds the halves
	// first, so lane 0 and lane 8 meet before anything else.
	var a [16]float32
	a[0], a[8], a[4], a[12] = 1<<24, 1, 1, -(1 << 24)
	// t0 = 2^24+1 -> 2^24 (even), t4 = 1-2^24; t0+t4 = 1.
	if got := Reduce16(&a); got != 1 {
		t.Errorf("Reduce16 = %g, want 1", got)
	}
}

func TestLogfGlibc(t *testing.T) {
	for _, v := range logfVectors {
		x := math.Float32frombits(v[0])
		got := Logf(x)
		if math.Float32bits(got) != v[1] && !(got != got && math.IsNaN(float64(math.Float32frombits(v[1])))) {
			t.Errorf("Logf(%g) = %g (%#08x), glibc %#08x", x, got, math.Float32bits(got), v[1])
		}
	}
}
