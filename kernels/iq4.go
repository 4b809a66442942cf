package kernels

import "math"

// Shared pieces of the two 4-bit non-linear formats, IQ4_NL and IQ4_XS:
// the level table, ggml's nearest-level search and its scale search
// (quantize_row_iq4_nl_impl in ggml-quants.c).

// kvaluesIQ4NL is ggml's kvalues_iq4nl (ggml-common.h:kvalues_iq4nl): the
// 16 signed levels a 4-bit index selects.
var kvaluesIQ4NL = [16]int8{-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

// iq4GroupMaxEps is ggml's GROUP_MAX_EPS: a sub-block whose largest
// magnitude is below it counts as all zero.
const iq4GroupMaxEps = float32(1e-15)

// iq4BestIndex returns the index of the level nearest x, ties to the
// upper level (ggml's best_index_int8 over kvalues_iq4nl).
func iq4BestIndex(x float32) uint8 {
	v := &kvaluesIQ4NL
	if x <= float32(v[0]) {
		return 0
	}
	if x >= float32(v[15]) {
		return 15
	}
	lo, hi := 0, 15
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if x < float32(v[mid]) {
			hi = mid
		} else {
			lo = mid
		}
	}
	if x-float32(v[hi-1]) < float32(v[hi])-x {
		return uint8(hi - 1)
	}
	return uint8(hi)
}

// iq34NearestInt is ggml's nearest_int: round to nearest, ties to even, by
// adding 1.5*2^23 and reading the mantissa. Like ggml it is only
// meaningful for |f| <= 2^22; beyond that (or for NaN) it returns the same
// garbage ggml does, which callers clamp.
func iq34NearestInt(f float32) int32 {
	v := f + 12582912
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

// iq4Weights fills w with ggml's per-element importance for the 32
// elements xb: xb² without an importance matrix, else
// qw·sqrt(sigma2 + xb²).
func iq4Weights(w *[32]float32, xb []float32, qw []float32, sigma2 float32) {
	xb = xb[:32]
	if qw == nil {
		for j, x := range xb {
			w[j] = x * x
		}
		return
	}
	qw = qw[:32]
	for j, x := range xb {
		w[j] = qw[j] * iq34Sqrt(sigma2+float32(x*x))
	}
}

func iq34Sqrt(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// iq4SubblockScale is the scale search of quantize_row_iq4_nl_impl for
// one 32-element sub-block xb with weights w. It returns the scale and
// leaves the level indices of the first pass (ntry < 0) or of the best
// scale tried (ntry > 0) in L. For an all-zero sub-block it returns 0 and
// leaves L untouched, as ggml does.
func iq4SubblockScale(xb []float32, w *[32]float32, L []uint8, ntry int) float32 {
	xb = xb[:32]
	L = L[:32]
	var amax, vmax float32
	for _, x := range xb {
		if ax := abs32(x); ax > amax {
			amax, vmax = ax, x
		}
	}
	if amax < iq4GroupMaxEps {
		return 0
	}
	v0 := float32(kvaluesIQ4NL[0])
	d := vmax / v0
	if ntry > 0 {
		d = -vmax / v0
	}
	id := 1 / d
	var sumqx, sumq2 float32
	for j, x := range xb {
		l := iq4BestIndex(id * x)
		L[j] = l
		q := float32(kvaluesIQ4NL[l])
		sumqx += float32(w[j] * q * x)
		sumq2 += float32(w[j] * q * q)
	}
	d = 0
	if sumq2 > 0 {
		d = sumqx / sumq2
	}
	best := d * sumqx
	for itry := -ntry; itry <= ntry; itry++ {
		id = float32(itry+int(kvaluesIQ4NL[0])) / vmax
		sumqx, sumq2 = 0, 0
		for j, x := range xb {
			q := float32(kvaluesIQ4NL[iq4BestIndex(id*x)])
			sumqx += float32(w[j] * q * x)
			sumq2 += float32(w[j] * q * q)
		}
		if sumq2 > 0 && float32(sumqx*sumqx) > float32(best*sumq2) {
			d = sumqx / sumq2
			best = d * sumqx
		}
	}
	return d
}

// iq4Pack stores the 4-bit indices of one 32-element sub-block: byte j
// holds element j in its low and element j+16 in its high nibble.
func iq4Pack(qs []byte, L []uint8) {
	qs = qs[:16]
	L = L[:32]
	for j := range qs {
		qs[j] = L[j] | L[j+16]<<4
	}
}
