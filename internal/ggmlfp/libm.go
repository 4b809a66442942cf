package ggmlfp

import "math"

// This file reproduces the single-precision libm functions ggml calls
// (expf, sincosf) as glibc 2.36 computes them on x86-64 CPUs with FMA: its
// ifunc picks the *_fma builds, whose double-precision evaluation is
// written out here operation by operation with the same fusions. The
// constants are the values stored in that libm.

// expf: 2^(k/32) table entries with k<<47 subtracted (exp2f_data.tab).
var expfTab = [32]uint64{
	0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
	0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
	0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
	0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
	0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
	0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
	0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
	0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
}

// Expf is glibc's expf (the FMA build).
func Expf(x float32) float32 {
	abstop := math.Float32bits(x) >> 20 & 0x7ff
	if abstop > 0x42a { // |x| >= 88, inf or nan
		switch {
		case math.Float32bits(x) == 0xff800000:
			return 0
		case abstop > 0x7f7:
			return x + x
		case x > 0x1.62e42ep6:
			return float32(math.Inf(1))
		case x < -0x1.9fe368p6:
			return 0
		case x < -0x1.9d1d9ep6:
			return 0x1p-149 // __math_may_uflowf: 0x1.4p-75f squared
		}
	}
	const invLn2N = 0x1.71547652b82fep+5
	const shift = 0x1.8p+52
	xd := float64(x)
	kd := math.FMA(invLn2N, xd, shift)
	ki := math.Float64bits(kd)
	kd -= shift
	r := math.FMA(invLn2N, xd, -kd)
	t := expfTab[ki%32] + ki<<47
	s := math.Float64frombits(t)
	z := math.FMA(0x1.c6af84b912394p-20, r, 0x1.ebfce50fac4f3p-13)
	r2 := float64(r * r)
	y := math.FMA(r, 0x1.62e42ff0c52d6p-6, 1)
	y = math.FMA(z, r2, y)
	return float32(float64(y * s))
}

// sincosf tables: sign[4], hpi_inv (2/pi scaled by 2^24), hpi, then the
// polynomial coefficients interleaved as the vectorised code loads them:
// c0, c1, s1, c2, s2, c3, s3, c4. The second table serves quadrants 2, 3.
type sincosTable struct {
	sign                           [4]float64
	hpiInv, hpi                    float64
	c0, c1, s1, c2, s2, c3, s3, c4 float64
}

var sincosfTables = [2]sincosTable{
	{[4]float64{1, -1, -1, 1}, 0x1.45f306dc9c883p+23, 0x1.921fb54442d18p+0,
		1, -0x1.ffffffd0c621cp-2, -0x1.555545995a603p-3, 0x1.55553e1068f19p-5,
		0x1.1107605230bc4p-7, -0x1.6c087e89a359dp-10, -0x1.994eb3774cf24p-13, 0x1.99343027bf8c3p-16},
	{[4]float64{1, -1, -1, 1}, 0x1.45f306dc9c883p+23, 0x1.921fb54442d18p+0,
		-1, 0x1.ffffffd0c621cp-2, -0x1.555545995a603p-3, -0x1.55553e1068f19p-5,
		0x1.1107605230bc4p-7, 0x1.6c087e89a359dp-10, -0x1.994eb3774cf24p-13, -0x1.99343027bf8c3p-16},
}

// 4/pi in 192 bits, one 32-bit window per byte offset.
var invPio4 = [24]uint32{
	0x000000a2, 0x0000a2f9, 0x00a2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44,
	0x6e4e4415, 0x4e441529, 0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1,
	0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0, 0x34ddc0db, 0xddc0db62,
	0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
}

// Sincosf is glibc's sincosf (the FMA build), which GCC substitutes for
// the cosf/sinf pair in ggml's rope cache.
func Sincosf(y float32) (sin, cos float32) {
	yi := math.Float32bits(y)
	abstop := yi >> 20 & 0x7ff
	x := float64(y)
	if abstop < 0x3f4 { // |y| < pi/4
		x2 := float64(x * x)
		if abstop < 0x398 { // |y| < 2^-12
			return y, 1
		}
		return sincosfPoly(x, x2, &sincosfTables[0], 0)
	}
	var n int
	var sgn uint32
	if abstop < 0x42f { // |y| < 120
		p := &sincosfTables[0]
		n = (int(int32(x*p.hpiInv)) + 0x800000) >> 24
		x = math.FMA(-float64(n), p.hpi, x)
	} else if abstop < 0x7f8 {
		sgn = yi >> 31
		x, n = sincosfReduceLarge(yi)
	} else {
		nan := y - y
		return nan, nan
	}
	q := (n + int(sgn)) & 3
	p := &sincosfTables[q>>1]
	s := p.sign[q]
	xs := float64(x * s)
	x2 := float64(x * x)
	return sincosfPoly(xs, x2, p, n)
}

func sincosfReduceLarge(xi uint32) (float64, int) {
	arr := invPio4[(xi>>26)&15:]
	shift := (xi >> 23) & 7
	m := ((xi & 0x7fffff) | 0x800000) << shift
	res0 := uint64(m * arr[0])
	res1 := uint64(m) * uint64(arr[4])
	res2 := uint64(m) * uint64(arr[8])
	res0 = (res2 >> 32) | (res0 << 32)
	res0 += res1
	n := (res0 + 1<<61) >> 62
	res0 -= n << 62
	return float64(float64(int64(res0)) * 0x1.921fb54442d18p-62), int(n)
}

// sincosfPoly evaluates both polynomials as the vectorised FMA code does
// (lane 0 sine, lane 1 cosine) and swaps them for odd quadrants.
func sincosfPoly(x, x2 float64, p *sincosTable, n int) (sin, cos float32) {
	x3 := float64(x2 * x)
	x4 := float64(x2 * x2)
	s1 := math.FMA(x2, p.s3, p.s2)
	c2 := math.FMA(x2, p.c4, p.c3)
	x5 := float64(x2 * x3)
	x6 := float64(x2 * x4)
	c1 := math.FMA(x2, p.c1, p.c0)
	s := math.FMA(x3, p.s1, x)
	c := math.FMA(x4, p.c2, c1)
	so := float32(math.FMA(s1, x5, s))
	co := float32(math.FMA(c2, x6, c))
	if n&1 != 0 {
		return co, so
	}
	return so, co
}

// logf: 1/c and log(c) for 16 subintervals of [0x3f330000, 2*0x3f330000).
var logfTab = [16][2]float64{
	{0x1.661ec79f8f3bep+0, -0x1.57bf7808caadep-2},
	{0x1.571ed4aaf883dp+0, -0x1.2bef0a7c06ddbp-2},
	{0x1.49539f0f010b0p+0, -0x1.01eae7f513a67p-2},
	{0x1.3c995b0b80385p+0, -0x1.b31d8a68224e9p-3},
	{0x1.30d190c8864a5p+0, -0x1.6574f0ac07758p-3},
	{0x1.25e227b0b8ea0p+0, -0x1.1aa2bc79c8100p-3},
	{0x1.1bb4a4a1a343fp+0, -0x1.a4e76ce8c0e5ep-4},
	{0x1.12358f08ae5bap+0, -0x1.1973c5a611cccp-4},
	{0x1.0953f419900a7p+0, -0x1.252f438e10c1ep-5},
	{0x1.0000000000000p+0, 0},
	{0x1.e608cfd9a47acp-1, 0x1.aa5aa5df25984p-5},
	{0x1.ca4b31f026aa0p-1, 0x1.c5e53aa362eb4p-4},
	{0x1.b2036576afce6p-1, 0x1.526e57720db08p-3},
	{0x1.9c2d163a1aa2dp-1, 0x1.bc2860d224770p-3},
	{0x1.886e6037841edp-1, 0x1.1058bc8a07ee1p-2},
	{0x1.767dcf5534862p-1, 0x1.4043057b6ee09p-2},
}

// Logf is glibc's logf (the FMA build), which ggml calls for YaRN's
// magnitude scale and correction dimensions.
func Logf(x float32) float32 {
	ix := math.Float32bits(x)
	if ix == 0x3f800000 {
		return 0
	}
	if ix-0x00800000 >= 0x7f800000-0x00800000 {
		// x < 2^-126, negative, inf or nan
		switch {
		case ix*2 == 0:
			return float32(math.Inf(-1))
		case ix == 0x7f800000:
			return x
		case ix&0x80000000 != 0 || ix*2 >= 0xff000000:
			return float32(math.NaN())
		}
		ix = math.Float32bits(x*0x1p23) - 23<<23 // subnormal: normalise
	}
	tmp := ix - 0x3f330000
	i := tmp >> 19 & 15
	k := int32(tmp) >> 23
	iz := ix - tmp&0xff800000
	z := float64(math.Float32frombits(iz))
	r := math.FMA(z, logfTab[i][0], -1)
	y0 := math.FMA(float64(k), 0x1.62e42fefa39efp-1, logfTab[i][1])
	r2 := float64(r * r)
	y := math.FMA(r, 0x1.5575b0be00b6ap-2, -0x1.ffffef20a4123p-2)
	y = math.FMA(r2, -0x1.00ea348b88334p-2, y)
	y = math.FMA(r2, y, float64(r+y0))
	return float32(y)
}
