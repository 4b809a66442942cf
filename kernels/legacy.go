package kernels

import (
	"encoding/binary"
	"math"
)

// This file holds what the 32-element "legacy" formats (Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q8_1) and the Q8_K activation type share: C's float-to-int
// conversions as x86-64 executes them, and the scale searches that ggml's
// quantize_row_*_impl run when an importance matrix is given.
//
// Every float32 product below is written float32(a*b) before it is added so
// that Go cannot fuse it into an FMA on arm64 and friends: ggml's reference
// code (libggml-base) is compiled without FMA.

// legacyQK is the block size of every legacy format (QK4_0 = QK4_1 = QK5_0 =
// QK5_1 = QK8_0 = QK8_1 = 32, ggml-common.h).
const legacyQK = 32

// legacyF16 reads the little-endian fp16 value at b[off:].
func legacyF16(b []byte, off int) float32 {
	return FP16ToF32(binary.LittleEndian.Uint16(b[off:]))
}

// legacyPutF16 stores f as fp16 (round to nearest even) at b[off:].
func legacyPutF16(b []byte, off int, f float32) {
	binary.LittleEndian.PutUint16(b[off:], F32ToFP16(f))
}

// legacyTrunc converts f to an integer the way C's (int) cast compiles on
// x86-64 (cvttss2si): toward zero, and the "integer indefinite" value
// math.MinInt32 for NaN and anything outside int32. Narrower C casts
// ((int8_t), (uint8_t)) then keep the low byte, as byte(legacyTrunc(f)) does.
func legacyTrunc(f float32) int32 {
	if !(f >= -(1<<31) && f < 1<<31) {
		return math.MinInt32
	}
	return int32(f)
}

// legacyRoundAway is C's roundf followed by an integer conversion: ties
// away from zero (quantize_row_q8_0_ref, quantize_row_q8_1_ref).
func legacyRoundAway(f float32) int32 {
	if !(f >= -(1<<31) && f < 1<<31) {
		return math.MinInt32
	}
	return int32(math.Round(float64(f)))
}

// legacyRoundEven is _mm256_round_ps(_MM_ROUND_NEAREST) followed by
// _mm256_cvtps_epi32: ties to even, math.MinInt32 for NaN and values outside
// int32 (x86 quantize_row_q8_0 / quantize_row_q8_1).
func legacyRoundEven(f float32) int32 {
	if abs32(f) < 1<<22 {
		return legacyNearestInt(f)
	}
	if !(f >= -(1<<31) && f < 1<<31) {
		return math.MinInt32
	}
	return int32(math.RoundToEven(float64(f)))
}

// legacyNearestInt is ggml's nearest_int (ggml-quants.c): adding 1.5·2^23
// rounds to an integer, ties to even, in the low mantissa bits. It is exact
// for |f| < 2^22; beyond that (and for NaN/Inf) it returns the same
// meaningless value ggml computes, since ggml only asserts the range.
func legacyNearestInt(f float32) int32 {
	v := float32(f) + 12582912 // the conversion keeps a caller's product from fusing into an FMA
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

// legacySat8 saturates an int32 to int8 as _mm256_packs_epi32 followed by
// _mm256_packs_epi16 does.
func legacySat8(v int32) byte {
	return byte(int8(min(max(v, -128), 127)))
}

// legacyMaxPS is _mm_max_ps for one lane: a > b ? a : b, so the second
// operand wins when either is NaN.
func legacyMaxPS(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// legacyMaxAbsAVX returns max|x| over a 32-element block with the lane
// structure of ggml's x86 quantize_row_q8_0/q8_1 reduction (four 8-lane
// vectors, then 8 → 4 → 2 → 1), which decides which value wins when x holds
// NaNs. For ordinary input it is simply the largest magnitude.
func legacyMaxAbsAVX(x []float32) float32 {
	x = x[:legacyQK]
	var m [8]float32
	for k := range m {
		m[k] = legacyMaxPS(legacyMaxPS(legacyMaxPS(abs32(x[k]), abs32(x[8+k])), abs32(x[16+k])), abs32(x[24+k]))
	}
	// _mm_max_ps(high half, low half), _mm_movehl_ps, _mm_movehdup_ps.
	q0 := legacyMaxPS(m[4], m[0])
	q1 := legacyMaxPS(m[5], m[1])
	q2 := legacyMaxPS(m[6], m[2])
	q3 := legacyMaxPS(m[7], m[3])
	return legacyMaxPS(legacyMaxPS(q0, q2), legacyMaxPS(q1, q3))
}

// legacySigma2 is the mean square of a whole row, summed in order in
// float32, that quantize_row_*_impl uses to weight the importance matrix.
func legacySigma2(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += float32(v * v)
	}
	return s / float32(len(x))
}

// legacyWeights fills w with ggml's per-element weights for one block:
// qw[j]·sqrt(sigma2 + x[j]²).
func legacyWeights(w *[legacyQK]float32, x, qw []float32, sigma2 float32) {
	x, qw = x[:legacyQK], qw[:legacyQK]
	for j := range w {
		w[j] = qw[j] * float32(math.Sqrt(float64(sigma2+float32(x[j]*x[j]))))
	}
}

// legacyMakeQX is ggml's make_qx_quants for the importance-matrix case
// (rmse_type 1 with weights): it picks a symmetric scale for one 32-element
// block by trying 19 candidate inverse scales around -nmax/max and keeping
// the one with the best weighted least-squares fit. L receives codes in
// [0, 2·nmax). It returns the scale d.
func legacyMakeQX(nmax int, x []float32, w *[legacyQK]float32, L *[legacyQK]int8) float32 {
	x = x[:legacyQK]
	var maxv, amax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, maxv = a, v
		}
	}
	if amax < 1e-15 { // GROUP_MAX_EPS: all zero
		*L = [legacyQK]int8{}
		return 0
	}
	fn := float32(nmax)
	clamp := func(l int32) int32 { return max(-int32(nmax), min(int32(nmax)-1, l)) }
	// fit returns Σw·x·l and Σw·l² for the codes of iscale.
	fit := func(iscale float32) (sumlx, suml2 float32) {
		for i, v := range x {
			l := float32(clamp(legacyNearestInt(float32(iscale * v))))
			sumlx += float32(float32(w[i]*v) * l)
			suml2 += float32(float32(w[i]*l) * l)
		}
		return sumlx, suml2
	}
	setL := func(iscale float32) {
		for i, v := range x {
			L[i] = int8(int32(nmax) + clamp(legacyNearestInt(float32(iscale*v))))
		}
	}
	iscale := -fn / maxv
	setL(iscale)
	sumlx, suml2 := fit(iscale)
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := float32(scale * sumlx)
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(fn + float32(0.1*float32(is))) / maxv
		sumlx, suml2 = fit(iscale)
		if suml2 > 0 && float32(sumlx*sumlx) > float32(best*suml2) {
			setL(iscale)
			scale = sumlx / suml2
			best = float32(scale * sumlx)
		}
	}
	return scale
}

// legacyMakeQKX3 is ggml's make_qkx3_quants with weights, for the
// asymmetric formats (Q4_1, Q5_1: rmin -0.9, rdelta 0.05, 36 steps, squared
// error): it searches a scale and a non-positive offset for one 32-element
// block, L receiving codes in [0, nmax]. It returns the scale and ggml's
// "the_min" (minus the offset).
func legacyMakeQKX3(nmax int, x []float32, w *[legacyQK]float32, L *[legacyQK]uint8) (scale, theMin float32) {
	const (
		rmin   = float32(-0.9)
		rdelta = float32(0.05)
		nstep  = 36
	)
	x = x[:legacyQK]
	minv, maxv := x[0], x[0]
	sumW := w[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < legacyQK; i++ {
		v := x[i]
		if v < minv {
			minv = v
		}
		if v > maxv {
			maxv = v
		}
		sumW += w[i]
		sumX += float32(w[i] * v)
	}
	if minv > 0 {
		minv = 0
	}
	if maxv <= minv {
		*L = [legacyQK]uint8{}
		return 0, -minv
	}
	fn := float32(nmax)
	code := func(iscale, v, minv float32) uint8 {
		return uint8(max(0, min(int32(nmax), legacyNearestInt(float32(iscale*float32(v-minv))))))
	}
	iscale := fn / float32(maxv-minv)
	scale = 1 / iscale
	var bestMad float32
	for i, v := range x {
		L[i] = code(iscale, v, minv)
		diff := float32(float32(scale*float32(L[i]))+minv) - v
		bestMad += float32(w[i] * float32(diff*diff))
	}
	var aux [legacyQK]uint8
	for is := 0; is <= nstep; is++ {
		iscale = float32(float32(rmin+float32(rdelta*float32(is)))+fn) / float32(maxv-minv)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := code(iscale, v, minv)
			aux[i] = l
			wl := float32(w[i] * float32(l))
			sumL += wl
			sumL2 += float32(wl * float32(l))
			sumXL += float32(wl * v)
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if !(D > 0) {
			continue
		}
		thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
		thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var mad float32
		for i, v := range x {
			diff := float32(float32(thisScale*float32(aux[i]))+thisMin) - v
			mad += float32(w[i] * float32(diff*diff))
		}
		if mad < bestMad {
			*L = aux
			bestMad = mad
			scale = thisScale
			minv = thisMin
		}
	}
	return scale, -minv
}
