package kernels

import (
	"encoding/binary"
	"math"

	"github.com/inference-x/inference-x/gguf"
)

// IQ1_M: 1.75 bits per weight. A block of 256 weights is 32 low index bytes
// (one per group of 8), 16 bytes of high bits (a nibble per group: 3 high
// index bits of the 11-bit iq1sGrid index and the sign of the shift in bit
// 3) and 4 little-endian uint16s holding sixteen 3-bit scales s (one per 16
// weights, 4 per uint16) and, in their top nibbles, the fp16 block scale d.
// Weight value: d*(2s+1)*(grid ± iq1mDelta).
const (
	iq1mBlockBytes = 56
	iq1mQh         = 32 // offset of the high bits
	iq1mScales     = 48 // offset of the scales
)

func init() {
	register(&Format{
		Type:       gguf.TypeIQ1_M,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeIQ1M,
		Quantize:   quantizeIQ1M,
		Dot:        dotIQ1M,
		DotF32:     dotF32IQ1M,
	})
}

// iq1mHeader returns the four scale words of block b and its fp16 scale d
// (ggml's iq1m_scale_t, gathered from the top nibbles).
func iq1mHeader(b []byte) (sc [4]uint16, d float32) {
	for i := range sc {
		sc[i] = binary.LittleEndian.Uint16(b[iq1mScales+2*i:])
	}
	h := sc[0]>>12 | sc[1]>>8&0x00f0 | sc[2]>>4&0x0f00 | sc[3]&0xf000
	return sc, FP16ToF32(h)
}

// iq1mSubScales returns 2s+1 of the two 16-weight halves of sub-block ib
// (0..7).
func iq1mSubScales(sc *[4]uint16, ib int) (ls1, ls2 uint16) {
	w := sc[ib/2] >> (6 * (ib % 2))
	return 2*(w&7) + 1, 2*(w>>3&7) + 1
}

// iq1mGridIndex returns the grid index of group l (0..3) of the 32 weights
// with low index bytes qs and high bits qh (2 bytes).
func iq1mGridIndex(qs, qh []byte, l int) uint16 {
	return uint16(qs[l]) | uint16(qh[l/2])<<(8-4*(l%2))&0x700
}

// iq1mShift returns the shift (±iq1mDelta) of group l of the 32 weights
// with high bits qh.
func iq1mShift(qh []byte, l int) float32 {
	return iq1Delta[qh[l/2]>>(3+4*(l%2))&1]
}

func dequantizeIQ1M(dst []float32, src []byte) {
	for i := 0; i < len(dst)/iq12QK; i++ {
		b := src[i*iq1mBlockBytes : (i+1)*iq1mBlockBytes]
		y := dst[i*iq12QK : (i+1)*iq12QK]
		sc, d := iq1mHeader(b)
		for ib := range 8 {
			ls1, ls2 := iq1mSubScales(&sc, ib)
			dl := [2]float32{d * float32(ls1), d * float32(ls2)}
			qs := b[4*ib : 4*ib+4]
			qh := b[iq1mQh+2*ib : iq1mQh+2*ib+2]
			for l := range 4 {
				iq1DequantGroup(y[32*ib+8*l:], dl[l/2], iq1mShift(qh, l), iq1sGrid[iq1mGridIndex(qs, qh, l)])
			}
		}
	}
}

// iq1mGroupDot returns the dot of group l of the 32 weights (low index
// bytes qs, high bits qh) with 8 q8 activations, and the activations' sum
// signed by the group's shift sign.
func iq1mGroupDot(qs, qh []byte, l int, q []byte) (dot, sum int32) {
	dot = iq1GroupDot(iq1sGrid[iq1mGridIndex(qs, qh, l)], q)
	// Σ int8 = Σ (uint8 ^ 0x80) - 8*128.
	sum = iq12ByteSum(binary.LittleEndian.Uint64(q)^0x8080808080808080) - 1024
	if qh[l/2]>>(3+4*(l%2))&1 != 0 {
		sum = -sum
	}
	return dot, sum
}

// dotIQ1M is ggml_vec_dot_iq1_m_q8_K_generic.
func dotIQ1M(n int, w, a []byte) float32 {
	var sumf float32
	for i := 0; i < n/iq12QK; i++ {
		x := w[i*iq1mBlockBytes : (i+1)*iq1mBlockBytes]
		y := a[i*iq12Q8KBytes : (i+1)*iq12Q8KBytes]
		sc, d := iq1mHeader(x)
		q8 := y[iq12Q8KQs : iq12Q8KQs+iq12QK]
		var sumi1, sumi2 int32
		for ib := range 8 {
			qs := x[4*ib : 4*ib+4]
			qh := x[iq1mQh+2*ib : iq1mQh+2*ib+2]
			q := q8[32*ib : 32*ib+32]
			d0, s0 := iq1mGroupDot(qs, qh, 0, q[0:8])
			d1, s1 := iq1mGroupDot(qs, qh, 1, q[8:16])
			d2, s2 := iq1mGroupDot(qs, qh, 2, q[16:24])
			d3, s3 := iq1mGroupDot(qs, qh, 3, q[24:32])
			ls1, ls2 := iq1mSubScales(&sc, ib)
			sumi1 += (d0+d1)*int32(ls1) + (d2+d3)*int32(ls2)
			sumi2 += (s0+s1)*int32(ls1) + (s2+s3)*int32(ls2)
		}
		sumf += float32(d * iq12Q8KScale(y) * (float32(sumi1) + float32(iq1mDelta*float32(sumi2))))
	}
	return sumf
}

func dotF32IQ1M(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i < len(x)/iq12QK; i++ {
		b := w[i*iq1mBlockBytes : (i+1)*iq1mBlockBytes]
		xb := x[i*iq12QK : (i+1)*iq12QK]
		sc, d := iq1mHeader(b)
		var bs float32
		for ib := range 8 {
			qs := b[4*ib : 4*ib+4]
			qh := b[iq1mQh+2*ib : iq1mQh+2*ib+2]
			xs := xb[32*ib : 32*ib+32]
			d0, s0 := iq1GroupDotF32(iq1sGrid[iq1mGridIndex(qs, qh, 0)], xs[0:8])
			d1, s1 := iq1GroupDotF32(iq1sGrid[iq1mGridIndex(qs, qh, 1)], xs[8:16])
			d2, s2 := iq1GroupDotF32(iq1sGrid[iq1mGridIndex(qs, qh, 2)], xs[16:24])
			d3, s3 := iq1GroupDotF32(iq1sGrid[iq1mGridIndex(qs, qh, 3)], xs[24:32])
			ls1, ls2 := iq1mSubScales(&sc, ib)
			h1 := d0 + iq1mShift(qh, 0)*s0 + d1 + iq1mShift(qh, 1)*s1
			h2 := d2 + iq1mShift(qh, 2)*s2 + d3 + iq1mShift(qh, 3)*s3
			bs += d*float32(ls1)*h1 + d*float32(ls2)*h2
		}
		sum += float64(bs)
	}
	return float32(sum)
}

// quantizeIQ1M is ggml's quantize_iq1_m (quantize_row_iq1_m_impl per row),
// which uses the importance matrix when given one.
func quantizeIQ1M(dst []byte, src, imatrix []float32) {
	t := iq1Search()
	for i := 0; i < len(src)/iq12QK; i++ {
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i*iq12QK : (i+1)*iq12QK]
		}
		iq1mQuantizeBlock(t, dst[i*iq1mBlockBytes:(i+1)*iq1mBlockBytes], src[i*iq12QK:(i+1)*iq12QK], qw)
	}
}

// iq1mGroupMaxEps is ggml's GROUP_MAX_EPS_IQ1_M.
const iq1mGroupMaxEps = 1e-7

// iq1mWeights fills the 16 search weights of a sub-block: ggml's
// qw*sqrt(sigma2+x²) with an importance matrix, x² without.
func iq1mWeights(weight *[16]float32, xb, qw []float32, sigma2 float32) {
	xb = xb[:16]
	if qw != nil {
		qw = qw[:16]
		for i, v := range xb {
			weight[i] = qw[i] * iq12Sqrt(sigma2+float32(v*v))
		}
		return
	}
	for i, v := range xb {
		weight[i] = v * v
	}
}

// iq1mLevels returns the level values of the two groups of 8 of a 16-weight
// sub-block for shift choice k: bit 1 of k negates the first group's shift,
// bit 0 the second's (ggml's best_k, 0..3).
func iq1mLevels(k int, xp, xm *[3]float32) (first, second *[3]float32) {
	first, second = xp, xp
	if k >= 2 {
		first = xm
	}
	if k%2 != 0 {
		second = xm
	}
	return first, second
}

// iq1mQuantizeBlock quantizes one block of 256 weights (qwbl nil: no
// importance matrix), the loop body of ggml's quantize_row_iq1_m_impl: as
// IQ1_S on 16-weight sub-blocks, each group of 8 with its own shift sign,
// then a least-squares fit of the block scale to the chosen points.
func iq1mQuantizeBlock(t *iq12Search, y []byte, xbl, qwbl []float32) {
	const bs = 16
	xp := [3]float32{-1 + iq1mDelta, iq1mDelta, 1 + iq1mDelta}
	xm := [3]float32{-1 - iq1mDelta, -iq1mDelta, 1 - iq1mDelta}
	masks := [4]uint8{0x00, 0x80, 0x08, 0x88}
	var (
		scales   [16]float32
		shifts   [16]int
		weight   [bs]float32
		L        [bs]int8
		idx      [bs]int
		index    [2]int
		px, pq   [bs][3][4]float32 // per sorted position, level and k: w·q·x and w·q²
		maxScale float32
		sumx2    float32
	)
	y = y[:iq1mBlockBytes]
	clear(y)
	var qw []float32
	for _, v := range xbl[:iq12QK] {
		sumx2 += float32(v * v)
	}
	sigma2 := 2 * sumx2 / iq12QK
	for ib := range 16 {
		xb := xbl[bs*ib : bs*ib+bs]
		if qwbl != nil {
			qw = qwbl[bs*ib : bs*ib+bs]
		}
		iq1mWeights(&weight, xb, qw, sigma2)
		maxv := abs32(xb[0])
		for _, v := range xb[1:] {
			maxv = iq12Max(maxv, abs32(v))
		}
		if maxv < iq1mGroupMaxEps {
			scales[ib], shifts[ib] = 0, 0
			continue
		}
		iq1SortIndex(idx[:], xb)
		// The products ggml adds up for every split, computed once.
		for j, i := range idx {
			for k := range 4 {
				first, second := iq1mLevels(k, &xp, &xm)
				x3 := first
				if i >= bs/2 {
					x3 = second
				}
				for g := range 3 {
					wq := weight[i] * x3[g]
					px[j][g][k] = float32(wq * xb[i])
					pq[j][g][k] = float32(wq * x3[g])
				}
			}
		}
		bestScore, scale := float32(-math.MaxFloat32), maxv
		besti1, besti2, bestK := -1, -1, -1
		for i1 := 0; i1 <= bs; i1++ {
			for i2 := i1; i2 <= bs; i2++ {
				var sumqx, sumq2 [4]float32
				for j := range bs {
					g := 2
					if j < i1 {
						g = 0
					} else if j < i2 {
						g = 1
					}
					for k := range 4 {
						sumqx[k] += px[j][g][k]
						sumq2[k] += pq[j][g][k]
					}
				}
				for k := range 4 {
					if sumq2[k] > 0 && sumqx[k]*sumqx[k] > bestScore*sumq2[k] {
						scale = sumqx[k] / sumq2[k]
						bestScore = scale * sumqx[k]
						besti1, besti2, bestK = i1, i2, k
					}
				}
			}
		}
		if besti1 < 0 || besti2 < 0 || bestK < 0 {
			scales[ib], shifts[ib] = 0, 0
			continue
		}
		iq1SplitLevels(L[:], idx[:], besti1, besti2)
		if scale < 0 {
			for j := range L {
				L[j] = 2 - L[j]
			}
			scale, bestK = -scale, 3-bestK
		}
		first, second := iq1mLevels(bestK, &xp, &xm)
		xxs := [2]*[3]float32{first, second}
		allOnGrid := true
		for k := range 2 {
			u := iq2LatticeIndex(L[8*k : 8*k+8])
			gi := t.lookup(u)
			if gi < 0 {
				allOnGrid = false
				gi = iq1BestNeighbour2(t, t.neighboursOf(u), xb[8*k:], weight[8*k:], scale, xxs[k], L[8*k:])
			}
			index[k] = gi
		}
		if !allOnGrid {
			var sumqx, sumq2 float32
			for k, gi := range index {
				sumqx, sumq2 = iq1GroupSums(t, gi, xxs[k], xb[8*k:], weight[8*k:], sumqx, sumq2)
			}
			if sumqx > 0 && sumq2 > 0 {
				scale = sumqx / sumq2
			}
		}
		y[2*ib] = uint8(index[0])
		y[2*ib+1] = uint8(index[1])
		y[iq1mQh+ib] = uint8(index[0]>>8) | uint8(index[1]>>8)<<4
		scales[ib], shifts[ib] = scale, bestK
		maxScale = iq12Max(maxScale, scale)
	}
	if maxScale == 0 {
		return
	}
	var sc [4]uint16
	d := maxScale / 15
	id := 1 / d
	var sumqx, sumq2 float32
	for ib := range 16 {
		l := iq12NearestInt(0.5 * (float32(id*scales[ib]) - 1))
		l = max(0, min(7, l))
		sc[ib/4] |= uint16(l) << (3 * (ib % 4))
		y[iq1mQh+ib] |= masks[shifts[ib]&3]
		xb := xbl[bs*ib : bs*ib+bs]
		if qwbl != nil {
			qw = qwbl[bs*ib : bs*ib+bs]
		}
		iq1mWeights(&weight, xb, qw, sigma2)
		first, second := iq1mLevels(shifts[ib], &xp, &xm)
		fl := float32(2*l + 1)
		for k, xx := range [2]*[3]float32{first, second} {
			gi := int(y[2*ib+k]) | int(y[iq1mQh+ib])<<(8-4*k)&0x700
			pg := &t.grid[gi]
			for j := range 8 {
				w := weight[8*k+j]
				q := xx[(pg[j]-1)/2] * fl
				sumqx += float32(w * q * xb[8*k+j])
				sumq2 += float32(w * q * q)
			}
		}
	}
	if sumq2 > 0 {
		d = sumqx / sumq2
	}
	s := F32ToFP16(d * 1.1125)
	sc[0] |= (s & 0x000f) << 12
	sc[1] |= (s & 0x00f0) << 8
	sc[2] |= (s & 0x0f00) << 4
	sc[3] |= s & 0xf000
	for i, v := range sc {
		binary.LittleEndian.PutUint16(y[iq1mScales+2*i:], v)
	}
}
