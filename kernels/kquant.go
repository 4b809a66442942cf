package kernels

// Pieces shared by the k-quant formats Q2_K, Q3_K, Q4_K, Q5_K and Q6_K:
// ggml's rounding helper, the scale searches of ggml-quants.c, and the
// layout of the Q8_K activation blocks their integer dot products read.
//
// The searches are float32 code whose results are compared with ggml's byte
// for byte, so every expression keeps ggml's operation order and every
// product that feeds an addition is rounded explicitly (float32(a*b) + c)
// so that no platform fuses it into an FMA; ggml's own builds use none.

import (
	"encoding/binary"
	"math"
)

const (
	// kqBlock is QK_K, the elements of one k-quant super-block.
	kqBlock = 256
	// kqGroupMaxEps is GROUP_MAX_EPS: groups whose largest magnitude is
	// below it are treated as all zero.
	kqGroupMaxEps = float32(1e-15)

	// Q8_K block layout (ggml-common.h block_q8_K): f32 d, 256 int8 qs,
	// 16 int16 bsums (sums of 16 consecutive qs).
	kqQ8Bytes    = 292
	kqQ8QsOff    = 4
	kqQ8BsumsOff = 4 + kqBlock
)

// kqNearestInt is ggml's nearest_int: round to nearest, ties to even, by
// adding 1.5*2^23 and reading the mantissa bits. Like ggml it is only
// meaningful for |f| <= 2^22 and gives garbage (never a panic) beyond.
// The explicit float32(f) keeps a product passed as f from being fused with
// the addition into an FMA once this is inlined.
func kqNearestInt(f float32) int32 {
	v := float32(f) + 12582912
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

func kqSqrt(f float32) float32 { return float32(math.Sqrt(float64(f))) }

// kqHalf reads the fp16 value at b[off:off+2] as float32.
func kqHalf(b []byte, off int) float32 { return FP16ToF32(binary.LittleEndian.Uint16(b[off:])) }

func kqPutHalf(b []byte, off int, f float32) { binary.LittleEndian.PutUint16(b[off:], F32ToFP16(f)) }

// kqQ8Scale returns the f32 scale d of the Q8_K block b.
func kqQ8Scale(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// kqQ8Bsum returns bsums[j] of the Q8_K block b.
func kqQ8Bsum(b []byte, j int) int32 {
	return int32(int16(binary.LittleEndian.Uint16(b[kqQ8BsumsOff+2*j:])))
}

// kqMakeQXQuants is ggml's make_qx_quants with rmse_type 1: a symmetric
// quantization of x to levels -nmax..nmax-1 (stored in L as l+nmax) that
// tries 19 scales around nmax/max and keeps the one maximising the weighted
// fit. The weights are qw, or x² when qw is nil. It returns the scale.
func kqMakeQXQuants(nmax int, x []float32, L []int8, qw []float32) float32 {
	n := len(x)
	L = L[:n]
	if qw != nil {
		qw = qw[:n]
	}
	var max, amax float32
	for _, v := range x {
		if ax := abs32(v); ax > amax {
			amax, max = ax, v
		}
	}
	if amax < kqGroupMaxEps {
		for i := range L {
			L[i] = 0
		}
		return 0
	}
	weight := func(i int) float32 {
		if qw != nil {
			return qw[i]
		}
		return x[i] * x[i]
	}
	clamp := func(l int32) int32 { return kqMax32(int32(-nmax), kqMin32(int32(nmax-1), l)) }
	iscale := float32(-nmax) / max
	var sumlx, suml2 float32
	for i, v := range x {
		l := clamp(kqNearestInt(iscale * v))
		L[i] = int8(l + int32(nmax))
		w, fl := weight(i), float32(l)
		sumlx += float32(w * v * fl)
		suml2 += float32(w * fl * fl)
	}
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := scale * sumlx
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -(float32(nmax) + float32(float32(0.1)*float32(is))) / max
		sumlx, suml2 = 0, 0
		for i, v := range x {
			l := clamp(kqNearestInt(iscale * v))
			w, fl := weight(i), float32(l)
			sumlx += float32(w * v * fl)
			suml2 += float32(w * fl * fl)
		}
		if suml2 > 0 && sumlx*sumlx > best*suml2 {
			for i, v := range x {
				L[i] = int8(clamp(kqNearestInt(iscale*v)) + int32(nmax))
			}
			scale = sumlx / suml2
			best = scale * sumlx
		}
	}
	return scale
}

// kqMakeQ3Quants is ggml's make_q3_quants with do_rmse: the x²-weighted
// symmetric quantization Q3_K uses without an importance matrix, refined by
// up to five rounds of per-element moves. L gets l+nmax.
func kqMakeQ3Quants(nmax int, x []float32, L []int8) float32 {
	n := len(x)
	L = L[:n]
	var max, amax float32
	for _, v := range x {
		if ax := abs32(v); ax > amax {
			amax, max = ax, v
		}
	}
	if amax < kqGroupMaxEps {
		for i := range L {
			L[i] = 0
		}
		return 0
	}
	lo, hi := int32(-nmax), int32(nmax-1)
	iscale := float32(-nmax) / max
	var sumlx, suml2 float32
	for i, v := range x {
		l := kqMax32(lo, kqMin32(hi, kqNearestInt(iscale*v)))
		L[i] = int8(l)
		w, fl := v*v, float32(l)
		sumlx += float32(w * v * fl)
		suml2 += float32(w * fl * fl)
	}
	for itry := 0; itry < 5; itry++ {
		changed := false
		for i, v := range x {
			w, li := v*v, float32(L[i])
			slx := sumlx - float32(w*v*li)
			if slx > 0 {
				sl2 := suml2 - float32(w*li*li)
				newL := kqMax32(lo, kqMin32(hi, kqNearestInt(v*sl2/slx)))
				if newL != int32(L[i]) {
					fn := float32(newL)
					slx += float32(w * v * fn)
					sl2 += float32(w * fn * fn)
					if sl2 > 0 && slx*slx*suml2 > sumlx*sumlx*sl2 {
						L[i] = int8(newL)
						sumlx, suml2 = slx, sl2
						changed = true
					}
				}
			}
		}
		if !changed {
			break
		}
	}
	for i := range L {
		L[i] += int8(nmax)
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// kqMakeQKXQuants is ggml's make_qkx2_quants (and make_qkx3_quants with
// weights, which computes the same): an asymmetric quantization of x to
// 0..nmax as scale*L - min, searching nstep+1 scales for the smallest
// weighted error (|diff| when useMad, else diff²). aux is scratch of len(x).
// It returns the scale and the (non-negative) min.
func kqMakeQKXQuants(nmax int, x, weights []float32, L, aux []uint8, rmin, rdelta float32, nstep int, useMad bool) (scale, theMin float32) {
	n := len(x)
	weights, L, aux = weights[:n], L[:n], aux[:n]
	min, max := x[0], x[0]
	sumW := weights[0]
	sumX := sumW * x[0]
	for i := 1; i < n; i++ {
		v := x[i]
		if v < min {
			min = v
		}
		if v > max {
			max = v
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * v)
	}
	if min > 0 {
		min = 0
	}
	if max == min {
		for i := range L {
			L[i] = 0
		}
		return 0, -min
	}
	fnmax := float32(nmax)
	errOf := func(diff float32) float32 {
		if useMad {
			return abs32(diff)
		}
		return diff * diff
	}
	iscale := fnmax / (max - min)
	scale = 1 / iscale
	var bestErr float32
	for i, v := range x {
		l := kqMax32(0, kqMin32(int32(nmax), kqNearestInt(iscale*(v-min))))
		L[i] = uint8(l)
		diff := float32(scale*float32(l)) + min - v
		bestErr += float32(weights[i] * errOf(diff))
	}
	if nstep < 1 {
		return scale, -min
	}
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + fnmax) / (max - min)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := kqMax32(0, kqMin32(int32(nmax), kqNearestInt(iscale*(v-min))))
			aux[i] = uint8(l)
			w, fl := weights[i], float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(w * fl * fl)
			sumXL += float32(w * fl * v)
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if D > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curErr float32
			for i, v := range x {
				diff := float32(thisScale*float32(aux[i])) + thisMin - v
				curErr += float32(weights[i] * errOf(diff))
			}
			if curErr < bestErr {
				copy(L, aux)
				bestErr = curErr
				scale, min = thisScale, thisMin
			}
		}
	}
	return scale, -min
}

// kqMakeQPQuants is ggml's make_qp_quants: quantizes the non-negative
// sub-block scales (or mins) x to 0..nmax with weights qw, used by the
// importance-matrix quantizers. L gets the levels (truncated to a byte as
// in ggml); it returns the super-block scale.
func kqMakeQPQuants(nmax int, x []float32, L []uint8, qw []float32) float32 {
	n := len(x)
	L, qw = L[:n], qw[:n]
	var max float32
	for _, v := range x {
		if !(max > v) { // MAX(max, x[i])
			max = v
		}
	}
	if max < kqGroupMaxEps {
		for i := range L {
			L[i] = 0
		}
		return 0
	}
	fnmax := float32(nmax)
	iscale := fnmax / max
	for i, v := range x {
		L[i] = uint8(kqNearestInt(iscale * v))
	}
	scale := 1 / iscale
	var bestMSE float32
	for i, v := range x {
		diff := v - float32(scale*float32(L[i]))
		bestMSE += float32(qw[i] * diff * diff)
	}
	for is := -4; is <= 4; is++ {
		if is == 0 {
			continue
		}
		iscaleIs := (float32(float32(0.1)*float32(is)) + fnmax) / max
		scaleIs := 1 / iscaleIs
		var mse float32
		for i, v := range x {
			l := kqMin32(int32(nmax), kqNearestInt(iscaleIs*v))
			diff := v - float32(scaleIs*float32(l))
			mse += float32(qw[i] * diff * diff)
		}
		if mse < bestMSE {
			bestMSE = mse
			iscale = iscaleIs
		}
	}
	var sumlx, suml2 float32
	for i, v := range x {
		l := kqMin32(int32(nmax), kqNearestInt(iscale*v))
		L[i] = uint8(l)
		w, fl := qw[i], float32(l)
		sumlx += float32(w * v * fl)
		suml2 += float32(w * fl * fl)
	}
	for itry := 0; itry < 5; itry++ {
		changed := false
		for i, v := range x {
			w, li := qw[i], float32(L[i])
			slx := sumlx - float32(w*v*li)
			sl2 := suml2 - float32(w*li*li)
			if slx > 0 && sl2 > 0 {
				newL := kqMin32(int32(nmax), kqNearestInt(v*sl2/slx))
				if newL != int32(L[i]) {
					fn := float32(newL)
					slx += float32(w * v * fn)
					sl2 += float32(w * fn * fn)
					if slx*slx*suml2 > sumlx*sumlx*sl2 {
						L[i] = uint8(newL)
						sumlx, suml2 = slx, sl2
						changed = true
					}
				}
			}
		}
		if !changed {
			break
		}
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// kqScaleMinK4 is ggml's get_scale_min_k4: the 6-bit scale and min of
// sub-block j from the 12 packed bytes q of a Q4_K/Q5_K block.
func kqScaleMinK4(j int, q []byte) (sc, m uint8) {
	q = q[:12]
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// kqUnpackScalesK4 decodes the 8 scales and 8 mins of a Q4_K/Q5_K block.
func kqUnpackScalesK4(q []byte) (sc, m [8]uint8) {
	for j := range 8 {
		sc[j], m[j] = kqScaleMinK4(j, q)
	}
	return sc, m
}

// kqPackScalesK4 packs 8 scales and mins (6 bits each) into the 12 bytes
// of a Q4_K/Q5_K block, as the ggml quantizers do (uint8 arithmetic, so
// out-of-range values wrap the way they do in C).
func kqPackScalesK4(q []byte, ls, lm *[8]uint8) {
	q = q[:12]
	for j := range 8 {
		if j < 4 {
			q[j] = ls[j]
			q[j+4] = lm[j]
		} else {
			q[j+4] = ls[j]&0xF | (lm[j]&0xF)<<4
			q[j-4] |= (ls[j] >> 4) << 6
			q[j] |= (lm[j] >> 4) << 6
		}
	}
}

// kqLevel maps a level 0..63 to its float32 value: in the decoding loops a
// load is cheaper than an int-to-float conversion.
var kqLevel = func() (t [64]float32) {
	for i := range t {
		t[i] = float32(i)
	}
	return t
}()

func kqMin32(a, b int32) int32 {
	if a < b {
		return a
	}
	return b
}

func kqMax32(a, b int32) int32 {
	if a > b {
		return a
	}
	return b
}

// kqQuantizeScaleMin32 quantizes one super-block x for Q4_K (nmax 15) or
// Q5_K (nmax 31): it writes d, dmin and the 12 packed scale bytes to
// hdr[0:16] and the levels 0..nmax to L. Without an importance matrix it is
// the quantize_row_q{4,5}_K_ref search (make_qkx2_quants with rmin, rdelta,
// nstep); with one (qw, 256 weights) it is quantize_row_q{4,5}_K_impl
// (make_qkx3_quants, then make_qp_quants for the scales), where Q5_K clamps
// the scale levels to 63 and Q4_K does not (clampLevels).
func kqQuantizeScaleMin32(hdr []byte, L *[kqBlock]uint8, x, qw []float32, nmax int, rmin, rdelta float32, nstep int, clampLevels bool) {
	hdr = hdr[:16]
	x = x[:kqBlock]
	var scales, mins [8]float32
	var weights [32]float32
	var aux [32]uint8
	var ls, lm [8]uint8
	if qw == nil {
		var maxScale, maxMin float32
		for j := range 8 {
			xs := x[32*j : 32*j+32]
			var sumX2 float32
			for _, v := range xs {
				sumX2 += float32(v * v)
			}
			avX := kqSqrt(sumX2 / 32)
			for l, v := range xs {
				weights[l] = avX + abs32(v)
			}
			scales[j], mins[j] = kqMakeQKXQuants(nmax, xs, weights[:], L[32*j:32*j+32], aux[:], rmin, rdelta, nstep, false)
			if scales[j] > maxScale {
				maxScale = scales[j]
			}
			if mins[j] > maxMin {
				maxMin = mins[j]
			}
		}
		var invScale, invMin float32
		if maxScale > 0 {
			invScale = 63 / maxScale
		}
		if maxMin > 0 {
			invMin = 63 / maxMin
		}
		for j := range 8 {
			ls[j] = min(63, uint8(kqNearestInt(invScale*scales[j])))
			lm[j] = min(63, uint8(kqNearestInt(invMin*mins[j])))
		}
		kqPutHalf(hdr, 0, maxScale/63)
		kqPutHalf(hdr, 2, maxMin/63)
	} else {
		qw = qw[:kqBlock]
		var sumX2 float32
		for _, v := range x {
			sumX2 += float32(v * v)
		}
		sigma2 := 2 * sumX2 / kqBlock
		var sw [8]float32
		for j := range 8 {
			xs := x[32*j : 32*j+32]
			for l, v := range xs {
				weights[l] = qw[32*j+l] * kqSqrt(sigma2+float32(v*v))
			}
			var sumW float32
			for _, w := range weights {
				sumW += w
			}
			sw[j] = sumW
			scales[j], mins[j] = kqMakeQKXQuants(nmax, xs, weights[:], L[32*j:32*j+32], aux[:], -0.9, 0.05, 36, false)
		}
		dBlock := kqMakeQPQuants(63, scales[:], ls[:], sw[:])
		mBlock := kqMakeQPQuants(63, mins[:], lm[:], sw[:])
		if clampLevels {
			for j := range 8 {
				ls[j], lm[j] = min(63, ls[j]), min(63, lm[j])
			}
		}
		kqPutHalf(hdr, 0, dBlock)
		kqPutHalf(hdr, 2, mBlock)
	}
	kqPackScalesK4(hdr[4:16], &ls, &lm)

	// Requantize every element with the rounded scales actually stored.
	d, dmin := kqHalf(hdr, 0), kqHalf(hdr, 2)
	sc, m := kqUnpackScalesK4(hdr[4:16])
	for j := range 8 {
		dl := d * float32(sc[j])
		if dl == 0 {
			continue
		}
		ml := dmin * float32(m[j])
		for i, v := range x[32*j : 32*j+32] {
			l := kqNearestInt((v + ml) / dl)
			L[32*j+i] = uint8(kqMax32(0, kqMin32(int32(nmax), l)))
		}
	}
}
