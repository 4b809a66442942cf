package kernels

// Go models of ggml's SIMD dot products (ggml-cpu/arch/x86/quants.c, the
// AVX2 paths the sapphirerapids build runs): the same integer lanes, the
// same fused multiply-adds and the same horizontal sums, so that their
// results are bit-identical to ggml's dot_simd and to the assembly. The
// assembly is tested against these and, where the pure-Go Format.Dot keeps
// the same order, against Format.Dot.

import (
	"encoding/binary"
	"math"
)

// fma32 is a single-rounding float32 fused multiply-add (VFMADD*PS): the
// product is exact in float64, the sum is rounded to odd in float64 and
// then to float32, which gives the correctly rounded result.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 24+24 bits
	s := p + float64(c)
	if math.IsInf(s, 0) || math.IsNaN(s) || s == 0 {
		return float32(p + float64(c))
	}
	// TwoSum error of p + c (both exact float64 values).
	bb := s - p
	e := (p - (s - bb)) + (float64(c) - bb)
	if e != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 { // round to odd: step toward the exact value
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// hsum8 is ggml's hsum_float_8: (lo+hi) pairs, then (r0+r2)+(r1+r3).
func hsum8(v *[8]float32) float32 {
	r := [4]float32{v[4] + v[0], v[5] + v[1], v[6] + v[2], v[7] + v[3]}
	return hsum4(&r)
}

// hsum4 is movehl + add, movehdup + add_ss: (r0+r2)+(r1+r3).
func hsum4(r *[4]float32) float32 {
	return (r[0] + r[2]) + (r[1] + r[3])
}

func le32f(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }
func le16(b []byte) int16    { return int16(binary.LittleEndian.Uint16(b)) }

// laneDotQ4K models ggml_vec_dot_q4_K_q8_K (AVX2).
func laneDotQ4K(n int, w, a []byte) float32 {
	var acc [8]float32
	var accm [4]float32
	for i := 0; i < n/256; i++ {
		x := w[i*144 : (i+1)*144]
		y := a[i*292 : (i+1)*292]
		yd := le32f(y)
		d := yd * kqHalf(x, 0)
		dmin := -yd * kqHalf(x, 2)
		sc, m := kqUnpackScalesK4(x[4:16])
		var s [8]int16
		for j := 0; j < 8; j++ {
			s[j] = le16(y[260+4*j:]) + le16(y[262+4*j:]) // phaddw wraps like int16
		}
		for k := 0; k < 4; k++ {
			prod := int32(m[2*k])*int32(s[2*k]) + int32(m[2*k+1])*int32(s[2*k+1])
			accm[k] = fma32(dmin, float32(prod), accm[k])
		}
		var sumi [8]int32
		for c := 0; c < 4; c++ {
			for e := 0; e < 32; e++ {
				q := x[16+32*c+e]
				lo := int32(q&0xF) * int32(int8(y[4+64*c+e]))
				hi := int32(q>>4) * int32(int8(y[4+64*c+32+e]))
				sumi[e/4] += int32(sc[2*c])*lo + int32(sc[2*c+1])*hi
			}
		}
		for l := range acc {
			acc[l] = fma32(d, float32(sumi[l]), acc[l])
		}
	}
	return hsum8(&acc) + hsum4(&accm)
}

// laneDotQ6K models ggml_vec_dot_q6_K_q8_K (AVX2).
func laneDotQ6K(n int, w, a []byte) float32 {
	var acc [8]float32
	for i := 0; i < n/256; i++ {
		x := w[i*210 : (i+1)*210]
		y := a[i*292 : (i+1)*292]
		d := le32f(y) * kqHalf(x, 208)
		var sumi [8]int32
		for l := 0; l < 8; l++ {
			sub := int32(le16(y[260+4*l:]))*int32(int8(x[192+2*l])) + int32(le16(y[262+4*l:]))*int32(int8(x[192+2*l+1]))
			sumi[l] -= sub << 5
		}
		for j := 0; j < 2; j++ {
			ql, qh := x[64*j:], x[128+32*j:]
			for e := 0; e < 32; e++ {
				q := [4]int32{
					int32(ql[e]&0xF | (qh[e]&3)<<4),
					int32(ql[32+e]&0xF | (qh[e]&12)<<2),
					int32(ql[e]>>4 | qh[e]&48),
					int32(ql[32+e]>>4 | (qh[e]&192)>>2),
				}
				for k := 0; k < 4; k++ {
					g := 128*j + 32*k + e // element index
					sumi[e/4] += int32(int8(x[192+g/16])) * q[k] * int32(int8(y[4+g]))
				}
			}
		}
		for l := range acc {
			acc[l] = fma32(d, float32(sumi[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// lane32 models the single-accumulator loop of the 32-element formats
// (ggml_vec_dot_q8_0_q8_0, q4_0, q5_0 on AVX2): per block, lane l holds
// Σ x*y of elements 4l..4l+3 and acc[l] = fma(dx*dy, lane, acc[l]).
// weights decodes block b into its 32 int8 values and its scale.
func lane32(n int, a []byte, weights func(b int) ([32]int32, float32)) float32 {
	var acc [8]float32
	for b := 0; b < n/32; b++ {
		x, dx := weights(b)
		y := a[b*34 : (b+1)*34]
		d := dx * kqHalf(y, 0)
		for l := 0; l < 8; l++ {
			var s int32
			for e := 4 * l; e < 4*l+4; e++ {
				s += x[e] * int32(int8(y[2+e]))
			}
			acc[l] = fma32(d, float32(s), acc[l])
		}
	}
	return hsum8(&acc)
}

func laneDotQ8_0(n int, w, a []byte) float32 {
	return lane32(n, a, func(b int) (x [32]int32, d float32) {
		blk := w[b*34 : (b+1)*34]
		for i := range x {
			x[i] = int32(int8(blk[2+i]))
		}
		return x, kqHalf(blk, 0)
	})
}

func laneDotQ4_0(n int, w, a []byte) float32 {
	return lane32(n, a, func(b int) (x [32]int32, d float32) {
		blk := w[b*18 : (b+1)*18]
		for j := 0; j < 16; j++ {
			x[j] = int32(blk[2+j]&0xF) - 8
			x[j+16] = int32(blk[2+j]>>4) - 8
		}
		return x, kqHalf(blk, 0)
	})
}

func laneDotQ5_0(n int, w, a []byte) float32 {
	return lane32(n, a, func(b int) (x [32]int32, d float32) {
		blk := w[b*22 : (b+1)*22]
		qh := binary.LittleEndian.Uint32(blk[2:])
		for j := 0; j < 16; j++ {
			x[j] = int32(blk[6+j]&0xF|byte(qh>>j&1)<<4) - 16
			x[j+16] = int32(blk[6+j]>>4|byte(qh>>(j+16)&1)<<4) - 16
		}
		return x, kqHalf(blk, 0)
	})
}

// laneDotQ4_1 models ggml_vec_dot_q4_1_q8_1 (AVX2): lanes of nibble*y,
// acc = fma(dx*dy, lanes, acc), summs = fma(m, s, summs) in scalar code.
func laneDotQ4_1(n int, w, a []byte) float32 {
	var acc [8]float32
	var summs float32
	for b := 0; b < n/32; b++ {
		x := w[b*20 : (b+1)*20]
		y := a[b*36 : (b+1)*36]
		summs = fma32(kqHalf(x, 2), kqHalf(y, 2), summs)
		d := kqHalf(x, 0) * kqHalf(y, 0)
		for l := 0; l < 8; l++ {
			var s int32
			for e := 4 * l; e < 4*l+4; e++ {
				q := x[4+e%16]
				if e >= 16 {
					q >>= 4
				}
				s += int32(q&0xF) * int32(int8(y[4+e]))
			}
			acc[l] = fma32(d, float32(s), acc[l])
		}
	}
	return hsum8(&acc) + summs
}
