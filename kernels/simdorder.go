package kernels

import (
	"encoding/binary"
	"math"

	"github.com/inference-x/inference-x/gguf"

	"github.com/inference-x/inference-x/internal/ggmlfp"
)

// The dot products in this file reproduce, bit for bit, ggml-cpu's x86
// vec_dot kernels as llama.cpp runs them on AVX-512 machines (the AVX2
// code paths of arch/x86/quants.c, with AVX512-VNNI dpbusd for the byte
// products): per block, exact integer sums in eight 32-bit lanes (lane t
// holds elements 4t..4t+3 of every 32-element run), converted to float and
// accumulated with a fused multiply-add by the block scale, then reduced
// with hsum_float_8. Only the float steps are order sensitive; the integer
// lane sums are computed here in whatever order is fastest.

// midKey is zero when the float64 sum s of an exact product and a float32
// might round to float32 differently than the exact sum: s is a float32
// midpoint (low 29 mantissa bits 1 followed by 28 zeros) or lies in the
// float32 subnormal range (an exact zero is fine: it can only come from
// an exact cancellation).
func midKey(s float64) uint64 {
	b := math.Float64bits(s)
	a := (b << 1) >> 1                              // |s|
	tiny := uint64(int64((a>>52)-(1023-126))>>63) & // all ones below 2^-126
		uint64(int64(-a)>>63) // and not zero
	return (b&0x1fffffff ^ 0x10000000) &^ tiny
}

// fma8 sets acc[t] = fma(d, float(lanes[t]), acc[t]) for the eight lanes
// (fmaLanes8 with the int to float conversion of cvtdq2ps).
func fma8(acc *[8]float32, d float32, lanes *[8]int32) {
	dd := float64(d)
	s0 := dd*float64(float32(lanes[0])) + float64(acc[0])
	s1 := dd*float64(float32(lanes[1])) + float64(acc[1])
	s2 := dd*float64(float32(lanes[2])) + float64(acc[2])
	s3 := dd*float64(float32(lanes[3])) + float64(acc[3])
	s4 := dd*float64(float32(lanes[4])) + float64(acc[4])
	s5 := dd*float64(float32(lanes[5])) + float64(acc[5])
	s6 := dd*float64(float32(lanes[6])) + float64(acc[6])
	s7 := dd*float64(float32(lanes[7])) + float64(acc[7])
	const m = 0x0fffffff // every float32 midpoint has these bits zero
	low := min(math.Float64bits(s0)&m, math.Float64bits(s1)&m, math.Float64bits(s2)&m, math.Float64bits(s3)&m,
		math.Float64bits(s4)&m, math.Float64bits(s5)&m, math.Float64bits(s6)&m, math.Float64bits(s7)&m)
	if low == 0 {
		x := [8]float32{float32(lanes[0]), float32(lanes[1]), float32(lanes[2]), float32(lanes[3]),
			float32(lanes[4]), float32(lanes[5]), float32(lanes[6]), float32(lanes[7])}
		fmaLanesSlow8(acc, d, &x)
		return
	}
	acc[0], acc[1], acc[2], acc[3] = float32(s0), float32(s1), float32(s2), float32(s3)
	acc[4], acc[5], acc[6], acc[7] = float32(s4), float32(s5), float32(s6), float32(s7)
}

// fmaLanesSlow8 sets acc[t] = fma(d, x[t], acc[t]) exactly, lane by lane.
func fmaLanesSlow8(acc *[8]float32, d float32, x *[8]float32) {
	for t := range acc {
		acc[t] = fmaChecked(d, x[t], acc[t])
	}
}

// fmaChecked is ggmlfp.FMA32 for a lane that failed the combined test:
// the float64 sum s of the exact product and c rounds right unless it is
// a float32 midpoint (or float32-subnormal) AND inexact; exact sums that
// fall on a midpoint are common (small operands) and round to even as the
// hardware does.
func fmaChecked(a, b, c float32) float32 {
	p, cc := float64(a)*float64(b), float64(c)
	s := p + cc
	if midKey(s) != 0 {
		return float32(s)
	}
	bb := s - p
	if (p-(s-bb))+(cc-bb) == 0 { // TwoSum residual
		return float32(s)
	}
	return ggmlfp.FMA32(a, b, c)
}

// fmaLanes16 sets acc[l] = fma(x[l], y[l], acc[l]) exactly for 16 lanes.
func fmaLanes16(acc, x, y *[16]float32) {
	fmaXY8((*[8]float32)(acc[0:]), (*[8]float32)(x[0:]), (*[8]float32)(y[0:]))
	fmaXY8((*[8]float32)(acc[8:]), (*[8]float32)(x[8:]), (*[8]float32)(y[8:]))
}

// fmaXY8 sets acc[t] = fma(x[t], y[t], acc[t]) exactly for 8 lanes, with
// one midpoint pre-test as in fma8.
func fmaXY8(acc, x, y *[8]float32) {
	s0 := float64(x[0])*float64(y[0]) + float64(acc[0])
	s1 := float64(x[1])*float64(y[1]) + float64(acc[1])
	s2 := float64(x[2])*float64(y[2]) + float64(acc[2])
	s3 := float64(x[3])*float64(y[3]) + float64(acc[3])
	s4 := float64(x[4])*float64(y[4]) + float64(acc[4])
	s5 := float64(x[5])*float64(y[5]) + float64(acc[5])
	s6 := float64(x[6])*float64(y[6]) + float64(acc[6])
	s7 := float64(x[7])*float64(y[7]) + float64(acc[7])
	const m = 0x0fffffff
	if min(math.Float64bits(s0)&m, math.Float64bits(s1)&m, math.Float64bits(s2)&m, math.Float64bits(s3)&m,
		math.Float64bits(s4)&m, math.Float64bits(s5)&m, math.Float64bits(s6)&m, math.Float64bits(s7)&m) == 0 {
		for t := range acc {
			acc[t] = fmaChecked(x[t], y[t], acc[t])
		}
		return
	}
	acc[0], acc[1], acc[2], acc[3] = float32(s0), float32(s1), float32(s2), float32(s3)
	acc[4], acc[5], acc[6], acc[7] = float32(s4), float32(s5), float32(s6), float32(s7)
}

// loadF32x16 reads 16 little-endian float32 values.
func loadF32x16(dst *[16]float32, b *[64]byte) {
	for l := range dst {
		dst[l] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*l:]))
	}
}

// dot4s8 is the sum of four int8 products.
func dot4s8(x, y *[4]byte) int32 {
	return int32(int8(x[0]))*int32(int8(y[0])) + int32(int8(x[1]))*int32(int8(y[1])) +
		int32(int8(x[2]))*int32(int8(y[2])) + int32(int8(x[3]))*int32(int8(y[3]))
}

// q0Lanes returns the eight lane sums of one 32-element block: lane t =
// sum of w[k]*a[k] for k in 4t..4t+3.
func q0Lanes(w *[32]int8, a *[32]byte) (l [8]int32) {
	for t := range l {
		k := 4 * t
		l[t] = int32(w[k])*int32(int8(a[k])) + int32(w[k+1])*int32(int8(a[k+1])) +
			int32(w[k+2])*int32(int8(a[k+2])) + int32(w[k+3])*int32(int8(a[k+3]))
	}
	return l
}

// Block kinds of q0Dot and q1Dot (a switch rather than a func value keeps
// the decode buffer on the stack).
const (
	q0Q4_0 = iota
	q0Q5_0
	q0Q8_0
	q0IQ4NL
	q1Q4_1
	q1Q5_1
)

// q0Decode fills the block's 32 signed weights and returns its scale.
func q0Decode(kind int, b []byte, q *[32]int8) float32 {
	switch kind {
	case q0Q4_0:
		return decodeQ4_0(b, q)
	case q0Q5_0:
		return decodeQ5_0(b, q)
	case q0Q8_0:
		return decodeQ8_0(b, q)
	}
	return decodeIQ4NL(b, q)
}

// q0Dot is the shared arithmetic of ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0 and
// of tinyBLAS_Q0_AVX (llamafile's batched kernel for the same types and
// IQ4_NL): one 8-lane accumulator, acc = fma(dw*da, lanes, acc) per block,
// hsum_float_8.
func q0Dot(n int, w, a []byte, bw, kind int) float32 {
	var acc [8]float32
	var q [32]int8
	for i := 0; i < n/legacyQK; i++ {
		ba := (*[q8_0Bytes]byte)(a[i*q8_0Bytes:])
		dw := q0Decode(kind, w[i*bw:(i+1)*bw], &q)
		d := dw * legacyF16(ba[:], 0)
		lanes := q0Lanes(&q, (*[32]byte)(ba[2:]))
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc)
}

func decodeQ4_0(b []byte, q *[32]int8) float32 {
	for j := 0; j < 16; j++ {
		q[j] = int8(b[2+j]&0x0f) - 8
		q[j+16] = int8(b[2+j]>>4) - 8
	}
	return legacyF16(b, 0)
}

func decodeQ5_0(b []byte, q *[32]int8) float32 {
	qh := binary.LittleEndian.Uint32(b[2:6])
	for j := 0; j < 16; j++ {
		x0, x1 := legacyQ5Codes(b[6+j], qh>>j)
		q[j], q[j+16] = int8(x0-16), int8(x1-16)
	}
	return legacyF16(b, 0)
}

func decodeQ8_0(b []byte, q *[32]int8) float32 {
	for j := range q {
		q[j] = int8(b[2+j])
	}
	return legacyF16(b, 0)
}

func decodeIQ4NL(b []byte, q *[32]int8) float32 {
	for j := 0; j < 16; j++ {
		q[j] = kvaluesIQ4NL[b[2+j]&0x0f]
		q[j+16] = kvaluesIQ4NL[b[2+j]>>4]
	}
	return legacyF16(b, 0)
}

func dotQ5_0(n int, w, a []byte) float32 { return q0Dot(n, w, a, q5_0Bytes, q0Q5_0) }

// dotQ4_0 is q0Dot for Q4_0 with the nibbles read in place.
func dotQ4_0(n int, w, a []byte) float32 {
	var acc [8]float32
	for i := 0; i < n/legacyQK; i++ {
		bw := (*[q4_0Bytes]byte)(w[i*q4_0Bytes:])
		ba := (*[q8_0Bytes]byte)(a[i*q8_0Bytes:])
		d := legacyF16(bw[:], 0) * legacyF16(ba[:], 0)
		q := (*[16]byte)(bw[2:])
		y := (*[32]byte)(ba[2:])
		var l [8]int32
		for t := 0; t < 4; t++ {
			k := 4 * t
			l[t] = (int32(q[k]&15)-8)*int32(int8(y[k])) + (int32(q[k+1]&15)-8)*int32(int8(y[k+1])) +
				(int32(q[k+2]&15)-8)*int32(int8(y[k+2])) + (int32(q[k+3]&15)-8)*int32(int8(y[k+3]))
			l[t+4] = (int32(q[k]>>4)-8)*int32(int8(y[k+16])) + (int32(q[k+1]>>4)-8)*int32(int8(y[k+17])) +
				(int32(q[k+2]>>4)-8)*int32(int8(y[k+18])) + (int32(q[k+3]>>4)-8)*int32(int8(y[k+19]))
		}
		fma8(&acc, d, &l)
	}
	return ggmlfp.Reduce8(&acc)
}

// dotQ8_0 is q0Dot for Q8_0 with the codes read in place.
func dotQ8_0(n int, w, a []byte) float32 {
	var acc [8]float32
	for i := 0; i < n/legacyQK; i++ {
		bw := (*[q8_0Bytes]byte)(w[i*q8_0Bytes:])
		ba := (*[q8_0Bytes]byte)(a[i*q8_0Bytes:])
		d := legacyF16(bw[:], 0) * legacyF16(ba[:], 0)
		x := (*[32]byte)(bw[2:])
		y := (*[32]byte)(ba[2:])
		l := [8]int32{
			dot4s8((*[4]byte)(x[0:]), (*[4]byte)(y[0:])), dot4s8((*[4]byte)(x[4:]), (*[4]byte)(y[4:])),
			dot4s8((*[4]byte)(x[8:]), (*[4]byte)(y[8:])), dot4s8((*[4]byte)(x[12:]), (*[4]byte)(y[12:])),
			dot4s8((*[4]byte)(x[16:]), (*[4]byte)(y[16:])), dot4s8((*[4]byte)(x[20:]), (*[4]byte)(y[20:])),
			dot4s8((*[4]byte)(x[24:]), (*[4]byte)(y[24:])), dot4s8((*[4]byte)(x[28:]), (*[4]byte)(y[28:])),
		}
		fma8(&acc, d, &l)
	}
	return ggmlfp.Reduce8(&acc)
}

// dotIQ4NLBatch is tinyBLAS_Q0_AVX on IQ4_NL (one accumulator), which
// llama.cpp uses for two or more tokens.
func dotIQ4NLBatch(n int, w, a []byte) float32 {
	return q0Dot(n, w, a, iq4nlBlockBytes, q0IQ4NL)
}

// dotIQ4NL is ggml_vec_dot_iq4_nl_q8_0: even and odd blocks in two 8-lane
// accumulators, added before the hsum; an odd last block added in scalar
// code, fma(d, sum, sumf).
func dotIQ4NL(n int, w, a []byte) float32 {
	nb := n / legacyQK
	var acc1, acc2 [8]float32
	var q [32]int8
	ib := 0
	for ; ib+1 < nb; ib += 2 {
		for k := 0; k < 2; k++ {
			acc := &acc1
			if k == 1 {
				acc = &acc2
			}
			ba := (*[q8_0Bytes]byte)(a[(ib+k)*q8_0Bytes:])
			dw := decodeIQ4NL(w[(ib+k)*iq4nlBlockBytes:(ib+k+1)*iq4nlBlockBytes], &q)
			d := legacyF16(ba[:], 0) * dw
			lanes := q0Lanes(&q, (*[32]byte)(ba[2:]))
			fma8(acc, d, &lanes)
		}
	}
	for t := range acc1 {
		acc1[t] += acc2[t]
	}
	sumf := ggmlfp.Reduce8(&acc1)
	for ; ib < nb; ib++ {
		ba := (*[q8_0Bytes]byte)(a[ib*q8_0Bytes:])
		dw := decodeIQ4NL(w[ib*iq4nlBlockBytes:(ib+1)*iq4nlBlockBytes], &q)
		d := legacyF16(ba[:], 0) * dw
		lanes := q0Lanes(&q, (*[32]byte)(ba[2:]))
		var s int32
		for _, v := range lanes {
			s += v
		}
		sumf = ggmlfp.FMA32(d, float32(s), sumf)
	}
	return sumf
}

// q1Dot is ggml_vec_dot_{q4_1,q5_1}_q8_1: unsigned codes, lanes as above,
// acc = fma(dw*da, lanes, acc), and the min term summs = fma(m, s, summs)
// in scalar code; the result is hsum(acc) + summs.
func q1Dot(n int, w, a []byte, bw, kind int) float32 {
	var acc [8]float32
	var summs float32
	var q [32]int8
	for i := 0; i < n/legacyQK; i++ {
		ba := (*[q8_1Bytes]byte)(a[i*q8_1Bytes:])
		var dw, m float32
		if kind == q1Q4_1 {
			dw, m = decodeQ4_1(w[i*bw:(i+1)*bw], &q)
		} else {
			dw, m = decodeQ5_1(w[i*bw:(i+1)*bw], &q)
		}
		summs = ggmlfp.FMA32(m, legacyF16(ba[:], 2), summs)
		d := dw * legacyF16(ba[:], 0)
		lanes := q0Lanes(&q, (*[32]byte)(ba[4:]))
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc) + summs
}

func decodeQ4_1(b []byte, q *[32]int8) (float32, float32) {
	for j := 0; j < 16; j++ {
		q[j] = int8(b[4+j] & 0x0f)
		q[j+16] = int8(b[4+j] >> 4)
	}
	return legacyF16(b, 0), legacyF16(b, 2)
}

func decodeQ5_1(b []byte, q *[32]int8) (float32, float32) {
	qh := binary.LittleEndian.Uint32(b[4:8])
	for j := 0; j < 16; j++ {
		x0, x1 := legacyQ5Codes(b[8+j], qh>>j)
		q[j], q[j+16] = int8(x0), int8(x1)
	}
	return legacyF16(b, 0), legacyF16(b, 2)
}

func dotQ4_1(n int, w, a []byte) float32 { return q1Dot(n, w, a, q4_1Bytes, q1Q4_1) }
func dotQ5_1(n int, w, a []byte) float32 { return q1Dot(n, w, a, q5_1Bytes, q1Q5_1) }

// kqLanes returns the eight lane sums of a 256-element super-block:
// lane t = sum over the elements e with (e%32)/4 == t of
// sc[e/16]*q[e]*y[e] (y is the Q8_K block's 256 codes).
func kqLanes(q *[kqBlock]int8, sc *[16]int32, y *[kqBlock]byte) (l [8]int32) {
	for c := 0; c < 8; c++ {
		q32 := (*[32]int8)(q[32*c:])
		y32 := (*[32]byte)(y[32*c:])
		s0, s1 := sc[2*c], sc[2*c+1]
		l[0] += s0 * dot4i8((*[4]int8)(q32[0:]), (*[4]byte)(y32[0:]))
		l[1] += s0 * dot4i8((*[4]int8)(q32[4:]), (*[4]byte)(y32[4:]))
		l[2] += s0 * dot4i8((*[4]int8)(q32[8:]), (*[4]byte)(y32[8:]))
		l[3] += s0 * dot4i8((*[4]int8)(q32[12:]), (*[4]byte)(y32[12:]))
		l[4] += s1 * dot4i8((*[4]int8)(q32[16:]), (*[4]byte)(y32[16:]))
		l[5] += s1 * dot4i8((*[4]int8)(q32[20:]), (*[4]byte)(y32[20:]))
		l[6] += s1 * dot4i8((*[4]int8)(q32[24:]), (*[4]byte)(y32[24:]))
		l[7] += s1 * dot4i8((*[4]int8)(q32[28:]), (*[4]byte)(y32[28:]))
	}
	return l
}

// dot4i8 is the sum of four products of int8 weights and int8 codes.
func dot4i8(q *[4]int8, y *[4]byte) int32 {
	return int32(q[0])*int32(int8(y[0])) + int32(q[1])*int32(int8(y[1])) +
		int32(q[2])*int32(int8(y[2])) + int32(q[3])*int32(int8(y[3]))
}

// q8KParts returns a Q8_K block's scale, codes and bsums.
func q8KParts(y []byte) (float32, *[kqBlock]byte, *[kqQ8Bytes]byte) {
	b := (*[kqQ8Bytes]byte)(y)
	return kqQ8Scale(b[:]), (*[kqBlock]byte)(b[kqQ8QsOff:]), b
}

// dotQ2K is ggml_vec_dot_q2_K_q8_K (AVX2): per block first
// acc = fma(dmin, lane t of mins*bsums (sub-blocks 2t, 2t+1), acc), then
// acc = fma(d, lanes, acc).
func dotQ2K(n int, w, a []byte) float32 {
	var acc [8]float32
	var q [kqBlock]int8
	var sc [16]int32
	for i := 0; i < n/kqBlock; i++ {
		x := (*[q2KBlockBytes]byte)(w[i*q2KBlockBytes:])
		yd, qs, yb := q8KParts(a[i*kqQ8Bytes:])
		d := yd * kqHalf(x[:], 80)
		dmin := -yd * kqHalf(x[:], 82)
		var mins [8]int32
		for t := range mins {
			mins[t] = int32(x[2*t]>>4)*kqQ8Bsum(yb[:], 2*t) + int32(x[2*t+1]>>4)*kqQ8Bsum(yb[:], 2*t+1)
		}
		fma8(&acc, dmin, &mins)
		for j := range sc {
			sc[j] = int32(x[j] & 0xF)
		}
		for h := 0; h < 2; h++ {
			qq := (*[32]byte)(x[16+32*h:])
			for k := 0; k < 4; k++ {
				sh := uint(2 * k)
				for l := 0; l < 32; l++ {
					q[128*h+32*k+l] = int8(qq[l] >> sh & 3)
				}
			}
		}
		lanes := kqLanes(&q, &sc, qs)
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc)
}

// dotQ3K is ggml_vec_dot_q3_K_q8_K (AVX2): signed 3-bit values and signed
// scales, acc = fma(d, lanes, acc).
func dotQ3K(n int, w, a []byte) float32 {
	var acc [8]float32
	var q [kqBlock]int8
	var sc [16]int32
	for i := 0; i < n/kqBlock; i++ {
		x := (*[q3KBlockBytes]byte)(w[i*q3KBlockBytes:])
		yd, qs, _ := q8KParts(a[i*kqQ8Bytes:])
		d := yd * kqHalf(x[:], 108)
		s8 := q3KScales(x[96:108])
		for j := range sc {
			sc[j] = int32(s8[j])
		}
		hm := (*[32]byte)(x[0:])
		for h := 0; h < 2; h++ {
			qq := (*[32]byte)(x[32+32*h:])
			for k := 0; k < 4; k++ {
				sh, hb := uint(2*k), uint(4*h+k)
				for l := 0; l < 32; l++ {
					q[128*h+32*k+l] = int8(qq[l]>>sh&3) - int8(^hm[l]>>hb&1)<<2
				}
			}
		}
		lanes := kqLanes(&q, &sc, qs)
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc)
}

// q8KSubSums returns the 8 sums of 32 codes (bsums added in pairs).
func q8KSubSums(yb *[kqQ8Bytes]byte) (s [8]int32) {
	for k := range s {
		s[k] = int32(int16(kqQ8Bsum(yb[:], 2*k) + kqQ8Bsum(yb[:], 2*k+1)))
	}
	return s
}

// dotQ4K is ggml_vec_dot_q4_K_q8_K (AVX2): lanes with the 6-bit scales,
// acc = fma(d, lanes, acc); the mins in a 4-lane accumulator,
// acc_m[t] = fma(dmin, mins[2t]*s[2t] + mins[2t+1]*s[2t+1], acc_m[t]) over
// the 32-element sums s; result hsum(acc) + ((m0+m2)+(m1+m3)).
func dotQ4K(n int, w, a []byte) float32 {
	var acc [8]float32
	var accm [4]float32
	for i := 0; i < n/kqBlock; i++ {
		x := (*[q4KBlockBytes]byte)(w[i*q4KBlockBytes:])
		yd, qs, yb := q8KParts(a[i*kqQ8Bytes:])
		d := yd * kqHalf(x[:], 0)
		dmin := -yd * kqHalf(x[:], 2)
		s6, m6 := kqUnpackScalesK4(x[4:16])
		ss := q8KSubSums(yb)
		for t := range accm {
			p := int32(m6[2*t])*ss[2*t] + int32(m6[2*t+1])*ss[2*t+1]
			accm[t] = ggmlfp.FMA32(dmin, float32(p), accm[t])
		}
		// Lanes straight from the nibbles: chunk c's low nibbles are
		// elements 64c+l (scale 2c), its high nibbles 64c+32+l (2c+1).
		var lanes [8]int32
		for c := 0; c < 4; c++ {
			qq := (*[32]byte)(x[16+32*c:])
			ylo := (*[32]byte)(qs[64*c:])
			yhi := (*[32]byte)(qs[64*c+32:])
			slo, shi := int32(s6[2*c]), int32(s6[2*c+1])
			for t := 0; t < 8; t++ {
				k := 4 * t
				q0, q1, q2, q3 := int32(qq[k]), int32(qq[k+1]), int32(qq[k+2]), int32(qq[k+3])
				lo := (q0&15)*int32(int8(ylo[k])) + (q1&15)*int32(int8(ylo[k+1])) +
					(q2&15)*int32(int8(ylo[k+2])) + (q3&15)*int32(int8(ylo[k+3]))
				hi := (q0>>4)*int32(int8(yhi[k])) + (q1>>4)*int32(int8(yhi[k+1])) +
					(q2>>4)*int32(int8(yhi[k+2])) + (q3>>4)*int32(int8(yhi[k+3]))
				lanes[t] += slo*lo + shi*hi
			}
		}
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]))
}

// dotQ5K is ggml_vec_dot_q5_K_q8_K (AVX2): like Q4_K, but the min term is
// one integer per block, summs = fma(dmin, float(sum), summs), and the
// result hsum(acc) + summs.
func dotQ5K(n int, w, a []byte) float32 {
	var acc [8]float32
	var summs float32
	var q [kqBlock]int8
	var sc [16]int32
	for i := 0; i < n/kqBlock; i++ {
		x := (*[q5KBlockBytes]byte)(w[i*q5KBlockBytes:])
		yd, qs, yb := q8KParts(a[i*kqQ8Bytes:])
		d := yd * kqHalf(x[:], 0)
		dmin := -yd * kqHalf(x[:], 2)
		s6, m6 := kqUnpackScalesK4(x[4:16])
		ss := q8KSubSums(yb)
		var p int32
		for k := range ss {
			p += int32(m6[k]) * ss[k]
		}
		summs = ggmlfp.FMA32(dmin, float32(p), summs)
		for j := range sc {
			sc[j] = int32(s6[j/2])
		}
		qh := (*[32]byte)(x[16:])
		for c := 0; c < 4; c++ {
			qq := (*[32]byte)(x[48+32*c:])
			sh := uint(2 * c)
			for l, v := range qq {
				h := qh[l] >> sh
				q[64*c+l] = int8(v&0xF | h&1<<4)
				q[64*c+32+l] = int8(v>>4 | h&2<<3)
			}
		}
		lanes := kqLanes(&q, &sc, qs)
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc) + summs
}

// dotQ6K is ggml_vec_dot_q6_K_q8_K (AVX2): unsigned 6-bit codes in the
// lanes, minus 32*(bsums[2t]*sc[2t] + bsums[2t+1]*sc[2t+1]) in lane t,
// acc = fma(d, lanes, acc).
func dotQ6K(n int, w, a []byte) float32 {
	var acc [8]float32
	var sc [16]int32
	for i := 0; i < n/kqBlock; i++ {
		x := (*[q6KBlockBytes]byte)(w[i*q6KBlockBytes:])
		yd, qs, yb := q8KParts(a[i*kqQ8Bytes:])
		d := yd * kqHalf(x[:], 208)
		for j := range sc {
			sc[j] = int32(int8(x[192+j]))
		}
		// Lanes straight from ql/qh: half h, run v holds elements
		// 128h+32v+l with scale 8h+2v (l < 16) or 8h+2v+1.
		var lanes [8]int32
		for h := 0; h < 2; h++ {
			ql := (*[64]byte)(x[64*h:])
			qh := (*[32]byte)(x[128+32*h:])
			y := (*[128]byte)(qs[128*h:])
			s := (*[8]int32)(sc[8*h:])
			for t := 0; t < 8; t++ {
				l := 4 * t
				a0, a1, a2, a3 := q6Quad(ql, qh, y, l)
				b0, b1, b2, b3 := q6Quad(ql, qh, y, l+1)
				c0, c1, c2, c3 := q6Quad(ql, qh, y, l+2)
				d0, d1, d2, d3 := q6Quad(ql, qh, y, l+3)
				u := t / 4
				lanes[t] += s[u]*(a0+b0+c0+d0) + s[2+u]*(a1+b1+c1+d1) + s[4+u]*(a2+b2+c2+d2) + s[6+u]*(a3+b3+c3+d3)
			}
		}
		for t := range lanes {
			lanes[t] -= 32 * (kqQ8Bsum(yb[:], 2*t)*sc[2*t] + kqQ8Bsum(yb[:], 2*t+1)*sc[2*t+1])
		}
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc)
}

// q6Quad returns the products of the four Q6_K codes stored at byte l of
// a half-block (runs 0..3) with their activations.
func q6Quad(ql *[64]byte, qh *[32]byte, y *[128]byte, l int) (int32, int32, int32, int32) {
	hb := int32(qh[l&31])
	lo, hi := int32(ql[l&31]), int32(ql[l&31+32])
	return (lo&15 | hb&3<<4) * int32(int8(y[l&31])),
		(hi&15 | hb>>2&3<<4) * int32(int8(y[l&31+32])),
		(lo>>4 | hb>>4&3<<4) * int32(int8(y[l&31+64])),
		(hi>>4 | hb>>6&3<<4) * int32(int8(y[l&31+96]))
}

// decodeIQ4XS fills the super-block's values and 32-element scales
// (repeated per 16) and returns d.
func decodeIQ4XS(b []byte, q *[kqBlock]int8, sc *[16]int32) float32 {
	for ib := 0; ib < 8; ib++ {
		ls := iq4xsScale(b, ib)
		sc[2*ib], sc[2*ib+1] = ls, ls
		qs := b[8+16*ib:][:16]
		for j, v := range qs {
			q[32*ib+j] = kvaluesIQ4NL[v&0xf]
			q[32*ib+16+j] = kvaluesIQ4NL[v>>4]
		}
	}
	return FP16ToF32(binary.LittleEndian.Uint16(b))
}

// dotIQ4XS is ggml_vec_dot_iq4_xs_q8_K (AVX2): acc = fma(d, lanes, acc).
func dotIQ4XS(n int, w, a []byte) float32 {
	var acc [8]float32
	var q [kqBlock]int8
	var sc [16]int32
	for i := 0; i < n/kqBlock; i++ {
		yd, qs, _ := q8KParts(a[i*kqQ8Bytes:])
		d := decodeIQ4XS(w[i*iq4xsBlockBytes:(i+1)*iq4xsBlockBytes], &q, &sc) * yd
		lanes := kqLanes(&q, &sc, qs)
		fma8(&acc, d, &lanes)
	}
	return ggmlfp.Reduce8(&acc)
}

// iqpDfac returns the super-block factor the IQ panel gemm (iqp.cpp)
// folds the dequantization into: every dequantized value is exactly
// dfac times a small integer (sub-block scale times grid value).
func iqpDfac(t gguf.Type, b []byte) float32 {
	switch t {
	case gguf.TypeIQ3_S, gguf.TypeIQ4_XS:
		return FP16ToF32(binary.LittleEndian.Uint16(b))
	case gguf.TypeIQ3_XXS:
		return FP16ToF32(binary.LittleEndian.Uint16(b)) * 0.25
	case gguf.TypeIQ1_M:
		// the fp16 scale is spread over the top nibbles of the four
		// scale words at the end of the block
		sc := b[len(b)-8:]
		w := func(i int) uint16 { return binary.LittleEndian.Uint16(sc[2*i:]) }
		u := w(0)>>12 | w(1)>>8&0x00f0 | w(2)>>4&0x0f00 | w(3)&0xf000
		return FP16ToF32(u) * 0.125
	}
	return FP16ToF32(binary.LittleEndian.Uint16(b)) * 0.125
}

// iqDequant dequantizes one super-block of an IQ type (a switch, not the
// Format's func value, so that dst stays on the caller's stack).
func iqDequant(t gguf.Type, dst *[kqBlock]float32, b []byte) {
	switch t {
	case gguf.TypeIQ2_XXS:
		dequantizeIQ2XXS(dst[:], b)
	case gguf.TypeIQ2_XS:
		dequantizeIQ2XS(dst[:], b)
	case gguf.TypeIQ2_S:
		dequantizeIQ2S(dst[:], b)
	case gguf.TypeIQ3_XXS:
		dequantizeIQ3XXS(dst[:], b)
	case gguf.TypeIQ3_S:
		dequantizeIQ3S(dst[:], b)
	case gguf.TypeIQ1_S:
		dequantizeIQ1S(dst[:], b)
	case gguf.TypeIQ1_M:
		dequantizeIQ1M(dst[:], b)
	case gguf.TypeIQ4_XS:
		dequantizeIQ4XS(dst[:], b)
	}
}

// iqpDot is ggml-cpu's IQ panel gemm (iqp.cpp), which llama.cpp runs for
// the grid IQ types and IQ4_XS with 8 or more tokens: one accumulator per
// output, acc = fma(float(super-block integer dot), dfac*y.d, acc). The
// integers (sub-block scale times signed grid value) are recovered from
// the bit-exact dequantization, which is dfac times them exactly.
func iqpDot(f *Format, n int, w, a []byte) float32 {
	var acc float32
	var deq [kqBlock]float32
	bb := f.Type.BlockBytes()
	for i := 0; i < n/kqBlock; i++ {
		b := w[i*bb : (i+1)*bb]
		yd, qs, _ := q8KParts(a[i*kqQ8Bytes:])
		dfac := iqpDfac(f.Type, b)
		var s int32
		if dfac != 0 {
			iqDequant(f.Type, &deq, b)
			for e, v := range deq {
				s += int32(v/dfac) * int32(int8(qs[e]))
			}
		}
		acc = ggmlfp.FMA32(float32(s), dfac*yd, acc)
	}
	return acc
}

// iqpDots holds the batched dot of every type the panel gemm covers.
var iqpDots [gguf.TypeCount]func(n int, w, a []byte) float32

func init() {
	for _, t := range []gguf.Type{gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S, gguf.TypeIQ3_XXS,
		gguf.TypeIQ3_S, gguf.TypeIQ1_S, gguf.TypeIQ1_M, gguf.TypeIQ4_XS} {
		// formats[t] is read at call time: the per-type files register in
		// their own init functions.
		iqpDots[t] = func(n int, w, a []byte) float32 { return iqpDot(formats[t], n, w, a) }
	}
}

// batchDotFor returns the dot product llama.cpp uses for w when a matrix
// product has n token rows and it differs from the single-token vec_dot
// (ggml_compute_forward_mul_mat tries llamafile's tinyBLAS first for
// n >= 2, and the IQ panel gemm for n >= 8), or nil.
func batchDotFor(w *Matrix, n int) func(n int, w, a []byte) float32 {
	switch w.Type {
	case gguf.TypeIQ4_NL:
		if n >= 2 {
			return dotIQ4NLBatch
		}
	case gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S, gguf.TypeIQ3_XXS,
		gguf.TypeIQ3_S, gguf.TypeIQ1_S, gguf.TypeIQ1_M, gguf.TypeIQ4_XS:
		if n >= 8 && w.Rows%8 == 0 && w.Cols%kqBlock == 0 {
			return iqpDots[w.Type]
		}
	case gguf.TypeF16:
		if n >= 2 && w.Rows%4 == 0 && w.Cols%16 == 0 {
			return dotF16Batch
		}
	case gguf.TypeBF16:
		if n >= 2 && w.Rows%4 == 0 && w.Cols%32 == 0 {
			return dotBF16Batch
		}
	}
	return nil
}

// batchDotF32For is batchDotFor for F32 weights (whose dot reads f32
// activations): tinyBLAS for two or more tokens.
func batchDotF32For(w *Matrix, n int) func(w []byte, x []float32) float32 {
	if w.Type == gguf.TypeF32 && n >= 2 && w.Rows%4 == 0 && w.Cols%16 == 0 {
		return dotF32WBatch
	}
	return nil
}

// fmaFast is ggmlfp.FMA32 with its fast path inlined by hand.
func fmaFast(a, b, c float32) float32 {
	s := float64(a)*float64(b) + float64(c)
	if math.Float64bits(s)&0x0fffffff == 0 {
		return ggmlfp.FMA32(a, b, c)
	}
	return float32(s)
}

// vecDotF32Go is ggml_vec_dot_f32 on AVX-512 (GGML_F32_STEP 64, EPR 16) as
// GCC compiled it: four 16-lane FMA accumulators over the first n&^63
// elements, combined (a0+a2)+(a1+a3) and reduced with
// _mm512_reduce_add_ps; the rest added to that float sum in order, blocks
// of 16 and then 8 as rounded products (vectorised multiply, scalar adds),
// the last n%8 with scalar FMA. llama.cpp uses it for F32 weights with one
// token and for attention's q*k.
func vecDotF32Go(x, y []float32) float32 {
	n := len(x)
	y = y[:n]
	np := n &^ 63
	var sumf float32
	if np > 0 {
		var acc [4][16]float32
		for i := 0; i < np; i += 64 {
			for j := range acc {
				fmaLanes16(&acc[j], (*[16]float32)(x[i+16*j:]), (*[16]float32)(y[i+16*j:]))
			}
		}
		for l := range acc[0] {
			acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
		}
		sumf = ggmlfp.Reduce16(&acc[0])
	}
	i := np
	for ; n-i >= 16; i += 16 {
		for l := 0; l < 16; l++ {
			sumf += float32(x[i+l] * y[i+l])
		}
	}
	if n-i >= 8 {
		for l := 0; l < 8; l++ {
			sumf += float32(x[i+l] * y[i+l])
		}
		i += 8
	}
	for ; i < n; i++ {
		sumf = ggmlfp.FMA32(x[i], y[i], sumf)
	}
	return sumf
}

// dotF32WGo is vecDotF32Go with the first operand read from F32 row bytes.
func dotF32WGo(w []byte, x []float32) float32 {
	n := len(x)
	w = w[:4*n]
	np := n &^ 63
	var sumf float32
	if np > 0 {
		var acc [4][16]float32
		var wf [16]float32
		for i := 0; i < np; i += 64 {
			for j := range acc {
				loadF32x16(&wf, (*[64]byte)(w[4*(i+16*j):]))
				fmaLanes16(&acc[j], &wf, (*[16]float32)(x[i+16*j:]))
			}
		}
		for l := range acc[0] {
			acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
		}
		sumf = ggmlfp.Reduce16(&acc[0])
	}
	i := np
	for ; n-i >= 16; i += 16 {
		for l := 0; l < 16; l++ {
			sumf += float32(f32At(w, i+l) * x[i+l])
		}
	}
	if n-i >= 8 {
		for l := 0; l < 8; l++ {
			sumf += float32(f32At(w, i+l) * x[i+l])
		}
		i += 8
	}
	for ; i < n; i++ {
		sumf = ggmlfp.FMA32(f32At(w, i), x[i], sumf)
	}
	return sumf
}

// dotF32WBatchGo is llamafile's tinyBLAS on F32 (AVX-512), which llama.cpp
// uses for F32 weights with two or more tokens: one 16-lane accumulator,
// lane l an FMA chain over elements l, l+16, ..., then
// _mm512_reduce_add_ps.
func dotF32WBatchGo(w []byte, x []float32) float32 {
	var acc [16]float32
	w = w[:4*len(x)]
	var wf [16]float32
	for i := 0; i+16 <= len(x); i += 16 {
		loadF32x16(&wf, (*[64]byte)(w[4*i:]))
		fmaLanes16(&acc, &wf, (*[16]float32)(x[i:]))
	}
	return ggmlfp.Reduce16(&acc)
}

// dotF16 is ggml_vec_dot_f16 on AVX-512 without FP16 arithmetic: the
// values widened to float32, four 16-lane accumulators over n&^63
// elements (the products are exact, so the FMAs are plain adds), reduced
// as in VecDotF32 into a float64 sum; the rest added to it one by one.
func dotF16(n int, w, a []byte) float32 {
	w, a = w[:2*n], a[:2*n]
	np := n &^ 63
	var sumf float64
	if np > 0 {
		var acc [4][16]float32
		for i := 0; i < np; i += 64 {
			for j := range acc {
				bw, ba := (*[32]byte)(w[2*(i+16*j):]), (*[32]byte)(a[2*(i+16*j):])
				acc := &acc[j]
				for l := range acc {
					acc[l] += FP16ToF32(uint16(bw[2*l])|uint16(bw[2*l+1])<<8) *
						FP16ToF32(uint16(ba[2*l])|uint16(ba[2*l+1])<<8)
				}
			}
		}
		for l := range acc[0] {
			acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
		}
		sumf = float64(ggmlfp.Reduce16(&acc[0]))
	}
	for i := np; i < n; i++ {
		sumf += float64(f16At(w, i) * f16At(a, i))
	}
	return float32(sumf)
}

// dotF16Batch is tinyBLAS on F16 (AVX-512: 16 lanes widened to float32),
// which llama.cpp uses with two or more tokens when the row length is a
// multiple of 16.
func dotF16Batch(n int, w, a []byte) float32 {
	var acc [16]float32
	w, a = w[:2*n], a[:2*n]
	for i := 0; i+16 <= n; i += 16 {
		bw, ba := (*[32]byte)(w[2*i:]), (*[32]byte)(a[2*i:])
		for l := range acc {
			acc[l] += FP16ToF32(uint16(bw[2*l])|uint16(bw[2*l+1])<<8) *
				FP16ToF32(uint16(ba[2*l])|uint16(ba[2*l+1])<<8)
		}
	}
	return ggmlfp.Reduce16(&acc)
}

// dpbf16 is one lane of vdpbf16ps: c + x1*y1, then + x0*y0, each rounded
// once, with bf16 denormal inputs read as zero and denormal results
// flushed to zero.
func dpbf16(c float32, x0, x1, y0, y1 uint16) float32 {
	c = bf16FTZ(fmaFast(bf16DAZ(x1), bf16DAZ(y1), c))
	return bf16FTZ(fmaFast(bf16DAZ(x0), bf16DAZ(y0), c))
}

func bf16DAZ(h uint16) float32 {
	if h&0x7f80 == 0 {
		return math.Float32frombits(uint32(h&0x8000) << 16)
	}
	return math.Float32frombits(uint32(h) << 16)
}

func bf16FTZ(f float32) float32 {
	if b := math.Float32bits(f); b&0x7f800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return f
}

func bf16Pair(b []byte, i int) (uint16, uint16) {
	return uint16(b[2*i]) | uint16(b[2*i+1])<<8, uint16(b[2*i+2]) | uint16(b[2*i+3])<<8
}

// dotBF16 is ggml_vec_dot_bf16 with AVX512-BF16: per 64 elements, two
// 16-lane vdpbf16ps accumulators (the first and second 32, lane l taking
// elements 2l and 2l+1), each reduced into a float64 sum; the rest added
// to it one by one.
func dotBF16(n int, w, a []byte) float32 {
	w, a = w[:2*n], a[:2*n]
	var c1, c2 [16]float32
	i := 0
	for ; i+64 <= n; i += 64 {
		for l := 0; l < 16; l++ {
			x0, x1 := bf16Pair(w, i+2*l)
			y0, y1 := bf16Pair(a, i+2*l)
			c1[l] = dpbf16(c1[l], x0, x1, y0, y1)
			x0, x1 = bf16Pair(w, i+32+2*l)
			y0, y1 = bf16Pair(a, i+32+2*l)
			c2[l] = dpbf16(c2[l], x0, x1, y0, y1)
		}
	}
	sumf := float64(ggmlfp.Reduce16(&c1))
	sumf += float64(ggmlfp.Reduce16(&c2))
	for ; i < n; i++ {
		sumf += float64(bf16At(w, i) * bf16At(a, i))
	}
	return float32(sumf)
}

// dotBF16Batch is tinyBLAS on BF16 with AVX512-BF16 (32 elements per
// vdpbf16ps step into 16 lanes), used with two or more tokens when the
// row length is a multiple of 32.
func dotBF16Batch(n int, w, a []byte) float32 {
	var c [16]float32
	w, a = w[:2*n], a[:2*n]
	for i := 0; i+32 <= n; i += 32 {
		for l := 0; l < 16; l++ {
			x0, x1 := bf16Pair(w, i+2*l)
			y0, y1 := bf16Pair(a, i+2*l)
			c[l] = dpbf16(c[l], x0, x1, y0, y1)
		}
	}
	return ggmlfp.Reduce16(&c)
}

// fmaAxpyGo sets acc[i] = fma(x[i], p, acc[i]) for every i, each rounded
// once to float32 as vfmadd231ps does (len(x) >= len(acc)).
func fmaAxpyGo(acc, x []float32, p float32) {
	x = x[:len(acc)]
	pp := float64(p)
	i := 0
	for ; i+8 <= len(acc); i += 8 {
		a, v := (*[8]float32)(acc[i:]), (*[8]float32)(x[i:])
		s0 := float64(v[0])*pp + float64(a[0])
		s1 := float64(v[1])*pp + float64(a[1])
		s2 := float64(v[2])*pp + float64(a[2])
		s3 := float64(v[3])*pp + float64(a[3])
		s4 := float64(v[4])*pp + float64(a[4])
		s5 := float64(v[5])*pp + float64(a[5])
		s6 := float64(v[6])*pp + float64(a[6])
		s7 := float64(v[7])*pp + float64(a[7])
		const m = 0x0fffffff
		if min(math.Float64bits(s0)&m, math.Float64bits(s1)&m, math.Float64bits(s2)&m, math.Float64bits(s3)&m,
			math.Float64bits(s4)&m, math.Float64bits(s5)&m, math.Float64bits(s6)&m, math.Float64bits(s7)&m) == 0 {
			for t := range a {
				a[t] = fmaChecked(v[t], p, a[t])
			}
			continue
		}
		a[0], a[1], a[2], a[3] = float32(s0), float32(s1), float32(s2), float32(s3)
		a[4], a[5], a[6], a[7] = float32(s4), float32(s5), float32(s6), float32(s7)
	}
	for ; i < len(acc); i++ {
		acc[i] = fmaChecked(x[i], p, acc[i])
	}
}

// iqGridDot is the AVX2 vec_dot of the grid IQ types IQ2_XXS, IQ2_XS,
// IQ2_S, IQ3_XXS and IQ3_S: per super-block the usual eight lanes of
// (sub-block scale x signed grid value) x activation, acc = fma(d*y.d,
// lanes, acc), and the result scaled once: post * hsum_float_8(acc). The
// integers come from the bit-exact dequantization (dfac times them, see
// iqpDfac).
func iqGridDot(f *Format, n int, w, a []byte, post float32) float32 {
	var acc [8]float32
	var deq [kqBlock]float32
	bb := f.Type.BlockBytes()
	for i := 0; i < n/kqBlock; i++ {
		b := w[i*bb : (i+1)*bb]
		yd, qs, _ := q8KParts(a[i*kqQ8Bytes:])
		d := FP16ToF32(binary.LittleEndian.Uint16(b)) * yd
		var lanes [8]int32
		if dfac := iqpDfac(f.Type, b); dfac != 0 {
			iqDequant(f.Type, &deq, b)
			for e, v := range deq {
				lanes[e%32/4] += int32(v/dfac) * int32(int8(qs[e]))
			}
		}
		fma8(&acc, d, &lanes)
	}
	return post * ggmlfp.Reduce8(&acc)
}

func dotIQ2XXSSIMD(n int, w, a []byte) float32 {
	return iqGridDot(formats[gguf.TypeIQ2_XXS], n, w, a, 0.125)
}
func dotIQ2XSSIMD(n int, w, a []byte) float32 {
	return iqGridDot(formats[gguf.TypeIQ2_XS], n, w, a, 0.125)
}
func dotIQ2SSIMD(n int, w, a []byte) float32 {
	return iqGridDot(formats[gguf.TypeIQ2_S], n, w, a, 0.125)
}
func dotIQ3XXSSIMD(n int, w, a []byte) float32 {
	return iqGridDot(formats[gguf.TypeIQ3_XXS], n, w, a, 0.25)
}
func dotIQ3SSIMD(n int, w, a []byte) float32 { return iqGridDot(formats[gguf.TypeIQ3_S], n, w, a, 1) }

// ternaryDot is ggml_vec_dot_tq{1,2}_0_q8_K's AVX2 code (arch/x86/quants.c),
// which llama.cpp runs on x86 in place of the generic C: per block the
// unsigned codes (0..2, TQ2_0 also 3) times the Q8_K codes in sixteen
// 16-bit lanes (lane p: elements 32c+2p and 32c+2p+1 of the eight 32-byte
// runs c), minus bsums[p] (the sum of codes 16p..16p+15, standing for the
// -1 of every weight), wrapped to 16 bits; lanes paired into eight 32-bit
// lanes (vpmaddwd); acc = fma(y.d*d, float(lane), acc); hsum_float_8. The
// generic C instead adds each block's whole integer sum times the scale to
// one float, a different rounding of every block.
//
// tq1 selects the TQ1_0 block layout, else TQ2_0's (a flag rather than a
// func value keeps the code buffer on the stack).
func ternaryDot(n int, w, a []byte, tq1 bool) float32 {
	var acc [8]float32
	var q [kqBlock]uint8
	for i := 0; i < n/kqBlock; i++ {
		var dx float32
		if tq1 {
			dx = decodeTQ1_0(w[i*tq1BlockBytes:(i+1)*tq1BlockBytes], &q)
		} else {
			dx = decodeTQ2_0(w[i*tq2BlockBytes:(i+1)*tq2BlockBytes], &q)
		}
		yd, qs, yb := q8KParts(a[i*kqQ8Bytes:])
		lanes := ternaryLanes(&q, qs, yb)
		fma8(&acc, yd*dx, &lanes)
	}
	return ggmlfp.Reduce8(&acc)
}

// ternaryLanes returns the eight 32-bit lanes of ternaryDot for one block.
func ternaryLanes(q *[kqBlock]uint8, qs *[kqBlock]byte, yb *[kqQ8Bytes]byte) (lanes [8]int32) {
	var s [16]int32
	for c := 0; c < kqBlock; c += 32 {
		qc, yc := (*[32]uint8)(q[c:]), (*[32]byte)(qs[c:])
		for p := range s {
			s[p] += int32(qc[2*p])*int32(int8(yc[2*p])) + int32(qc[2*p+1])*int32(int8(yc[2*p+1]))
		}
	}
	for t := range lanes {
		lanes[t] = int32(int16(s[2*t]-kqQ8Bsum(yb[:], 2*t))) + int32(int16(s[2*t+1]-kqQ8Bsum(yb[:], 2*t+1)))
	}
	return lanes
}
