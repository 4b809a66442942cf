// Package ggmlfp reproduces, bit for bit, the float arithmetic that
// llama.cpp's CPU backend performs on x86-64 (the AVX-512 build of ggml-cpu
// and glibc's libm, whose FMA variants the dynamic loader picks on such
// CPUs): an exact single-precision fused multiply-add, ggml's vector exp and
// SiLU, the AVX-512 horizontal sum, and glibc 2.36's expf and sincosf.
//
// Everything here is written against the compiled code of those libraries
// (the instruction sequences, constants read from the binaries), not against
// portable C semantics: ggml-cpu is built with -mfma and GCC contracts a*b+c,
// and glibc's FMA variants evaluate their polynomials with fused operations.
//
// Products that must be rounded before an addition are written as
// float32(x*y) or float64(x*y): the explicit conversion stops the Go
// compiler from fusing them on targets where it may (GOAMD64=v3, arm64).
package ggmlfp

import "math"

// FMA32 returns a*b+c rounded once to float32, as vfmadd*ss does.
//
// It is not inlinable; hot loops inline its fast path by hand:
//
//	s := float64(a)*float64(b) + float64(c)
//	r := float32(s)
//	if math.Float64bits(s)&0x0fffffff == 0 {
//		r = ggmlfp.FMA32(a, b, c)
//	}
func FMA32(a, b, c float32) float32 {
	// a*b is exact in float64, so the sum is RN64(a*b+c) (fused or not);
	// rounding that to float32 is correct unless it landed exactly on a
	// float32 midpoint. Every midpoint (normal or subnormal float32 range)
	// has its low 28 mantissa bits zero; fma32Slow sorts those cases out
	// from the residual.
	s := float64(a)*float64(b) + float64(c)
	if math.Float64bits(s)&0x0fffffff == 0 {
		return fma32Slow(a, b, c, s)
	}
	return float32(s)
}

func fma32Slow(a, b, c float32, s float64) float32 {
	f := float32(s)
	if math.IsInf(s, 0) || math.IsNaN(s) || float64(f) == s {
		return f
	}
	p := float64(a) * float64(b) // exact
	cc := float64(c)
	// TwoSum: s + e == p + cc exactly.
	bb := s - p
	e := (p - (s - bb)) + (cc - bb)
	if e == 0 {
		return f
	}
	var g float32 // the float32 on the other side of s
	if float64(f) < s {
		g = math.Nextafter32(f, float32(math.Inf(1)))
	} else {
		g = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	if (float64(f)+float64(g))/2 != s {
		return f // not a midpoint: rounding s is rounding p+c
	}
	if (e > 0) == (g > f) {
		return g
	}
	return f
}

// Reduce16 is GCC's _mm512_reduce_add_ps: halves added pairwise (8, 4),
// then lanes {0,2} and {1,3}, then the two results.
func Reduce16(a *[16]float32) float32 {
	var t [8]float32
	for i := range t {
		t[i] = a[i] + a[i+8]
	}
	t0, t1, t2, t3 := t[0]+t[4], t[1]+t[5], t[2]+t[6], t[3]+t[7]
	return (t0 + t2) + (t1 + t3)
}

// Reduce8 is ggml's hsum_float_8 (and tinyBLAS's hsum of a __m256):
// high and low 128-bit halves added, then movehl (lanes {0,2}, {1,3}),
// then lane 0 + lane 1.
func Reduce8(a *[8]float32) float32 {
	t0, t1, t2, t3 := a[0]+a[4], a[1]+a[5], a[2]+a[6], a[3]+a[7]
	return (t0 + t2) + (t1 + t3)
}

// VExpf is ggml_v_expf (AVX-512) for one lane: a degree-5 polynomial in
// fused multiply-adds and a vscalefps by the rounded exponent.
func VExpf(x float32) float32 {
	const r = 0x1.8p23
	z := FMA32(x, 0x1.715476p+0, r)
	n := z - r
	b := FMA32(-n, 0x1.7f7d1cp-20, FMA32(-n, 0x1.62e4p-1, x))
	if n > 192 || n < -192 {
		if n <= 0 {
			return 0
		}
		return float32(math.Inf(1))
	}
	u := float32(b * b)
	j := FMA32(
		FMA32(FMA32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, FMA32(0x1.555e66p-3, b, 0x1.fffdb6p-2)),
		u,
		FMA32(0x1.ffffecp-1, b, 1))
	if n != n {
		return n
	}
	// vscalefps: j * 2^n, rounded once (n is an integer in [-192, 192]).
	return float32(float64(j) * math.Float64frombits(uint64(int64(n)+1023)<<52))
}

// VSilu is ggml_v_silu (AVX-512) for one lane: x / (1 + v_expf(0 - x)).
func VSilu(x float32) float32 {
	return x / (1 + VExpf(0-x))
}

// Silu is ggml_silu_f32, the scalar tail of ggml's vector loops:
// x / (1 + expf(-x)) with glibc's expf.
func Silu(x float32) float32 {
	return x / (1 + Expf(-x))
}

// SiluInRow is silu(x) for element i of a row of n values as
// ggml_vec_swiglu_f32 computes it on AVX-512: ggml_v_silu for the first
// n - n%16 elements, the scalar ggml_silu_f32 (glibc expf) for the rest.
func SiluInRow(x float32, i, n int) float32 {
	if i < n-n%16 {
		return VSilu(x)
	}
	return Silu(x)
}
