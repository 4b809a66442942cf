package kernels

import (
	"encoding/binary"
	"math"

	"github.com/inference-x/inference-x/gguf"
)

// IQ1_S: 1.5625 bits per weight. A block of 256 weights is an fp16 d, 32
// low index bytes (one per group of 8) and 8 little-endian uint16s, one per
// 32 weights: bits 3l..3l+2 are the high index bits of group l (11-bit
// indices into iq1sGrid), bits 12..14 a scale s and bit 15 the sign of the
// shift. Weight value: d*(2s+1)*(grid ± iq1sDelta).
const (
	iq1sBlockBytes = 50
	iq1sQs         = 2  // offset of the low index bytes
	iq1sQh         = 34 // offset of the uint16s
)

func init() {
	register(&Format{
		Type:         gguf.TypeIQ1_S,
		VecDot:       gguf.TypeQ8_K,
		NeedsImatrix: true,
		Dequantize:   dequantizeIQ1S,
		Quantize:     quantizeIQ1S,
		Dot:          dotIQ1S,
		DotF32:       dotF32IQ1S,
	})
}

// iq1Delta maps a shift sign bit to the shift (IQ1S_DELTA or IQ1M_DELTA,
// which are equal).
var iq1Delta = [2]float32{iq1sDelta, -iq1sDelta}

// iq1sGridIndex returns the grid index of group l (0..3) of the 32 weights
// with low index bytes qs and header h.
func iq1sGridIndex(qs []byte, h uint16, l int) uint16 {
	return uint16(qs[l]) | (h>>(3*l)&7)<<8
}

func dequantizeIQ1S(dst []float32, src []byte) {
	for i := 0; i < len(dst)/iq12QK; i++ {
		b := src[i*iq1sBlockBytes : (i+1)*iq1sBlockBytes]
		y := dst[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		for ib := range 8 {
			h := binary.LittleEndian.Uint16(b[iq1sQh+2*ib:])
			dl := d * float32(2*(h>>12&7)+1)
			delta := iq1Delta[h>>15]
			qs := b[iq1sQs+4*ib : iq1sQs+4*ib+4]
			for l := range 4 {
				iq1DequantGroup(y[32*ib+8*l:], dl, delta, iq1sGrid[iq1sGridIndex(qs, h, l)])
			}
		}
	}
}

// iq1DequantGroup writes the 8 values dl*(g[j]+delta) of one IQ1 group.
func iq1DequantGroup(y []float32, dl, delta float32, g uint64) {
	y = y[:8]
	y[0] = dl * (float32(int8(g)) + delta)
	y[1] = dl * (float32(int8(g>>8)) + delta)
	y[2] = dl * (float32(int8(g>>16)) + delta)
	y[3] = dl * (float32(int8(g>>24)) + delta)
	y[4] = dl * (float32(int8(g>>32)) + delta)
	y[5] = dl * (float32(int8(g>>40)) + delta)
	y[6] = dl * (float32(int8(g>>48)) + delta)
	y[7] = dl * (float32(int8(g>>56)) + delta)
}

// iq1GroupDot is the integer dot of one group of 8 IQ1 grid values g (int8
// in {-1, 0, 1}) with 8 q8 activations q.
func iq1GroupDot(g uint64, q []byte) int32 {
	x := binary.LittleEndian.Uint64(q)
	return int32(int8(g))*int32(int8(x)) + int32(int8(g>>8))*int32(int8(x>>8)) +
		int32(int8(g>>16))*int32(int8(x>>16)) + int32(int8(g>>24))*int32(int8(x>>24)) +
		int32(int8(g>>32))*int32(int8(x>>32)) + int32(int8(g>>40))*int32(int8(x>>40)) +
		int32(int8(g>>48))*int32(int8(x>>48)) + int32(int8(g>>56))*int32(int8(x>>56))
}

// iq1GroupDotF32 returns the dot of one group of 8 IQ1 grid values g with
// x, and the sum of x.
func iq1GroupDotF32(g uint64, x []float32) (dot, sum float32) {
	x = x[:8]
	dot = (float32(int8(g))*x[0] + float32(int8(g>>8))*x[1]) +
		(float32(int8(g>>16))*x[2] + float32(int8(g>>24))*x[3]) +
		(float32(int8(g>>32))*x[4] + float32(int8(g>>40))*x[5]) +
		(float32(int8(g>>48))*x[6] + float32(int8(g>>56))*x[7])
	sum = (x[0] + x[1]) + (x[2] + x[3]) + (x[4] + x[5]) + (x[6] + x[7])
	return dot, sum
}

// iq12Q8KBsum returns bsums[i] of the q8_K block y.
func iq12Q8KBsum(y []byte, i int) int32 {
	return int32(int16(binary.LittleEndian.Uint16(y[iq12Q8KBsums+2*i:])))
}

// dotIQ1S is ggml_vec_dot_iq1_s_q8_K_generic; the shift term uses the
// q8_K block sums.
func dotIQ1S(n int, w, a []byte) float32 {
	var sumf float32
	for i := 0; i < n/iq12QK; i++ {
		x := w[i*iq1sBlockBytes : (i+1)*iq1sBlockBytes]
		y := a[i*iq12Q8KBytes : (i+1)*iq12Q8KBytes]
		q8 := y[iq12Q8KQs : iq12Q8KQs+iq12QK]
		var sumi, sumi1 int32
		for ib := range 8 {
			h := binary.LittleEndian.Uint16(x[iq1sQh+2*ib:])
			ls := int32(2*(h>>12&7) + 1)
			qs := x[iq1sQs+4*ib : iq1sQs+4*ib+4]
			q := q8[32*ib : 32*ib+32]
			lsum := iq1GroupDot(iq1sGrid[iq1sGridIndex(qs, h, 0)], q[0:8]) +
				iq1GroupDot(iq1sGrid[iq1sGridIndex(qs, h, 1)], q[8:16]) +
				iq1GroupDot(iq1sGrid[iq1sGridIndex(qs, h, 2)], q[16:24]) +
				iq1GroupDot(iq1sGrid[iq1sGridIndex(qs, h, 3)], q[24:32])
			sumi += ls * lsum
			bs := iq12Q8KBsum(y, 2*ib) + iq12Q8KBsum(y, 2*ib+1)
			if h&0x8000 != 0 {
				bs = -bs
			}
			sumi1 += ls * bs
		}
		sumf += float32(iq12FP16(x) * iq12Q8KScale(y) * (float32(sumi) + float32(iq1sDelta*float32(sumi1))))
	}
	return sumf
}

func dotF32IQ1S(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i < len(x)/iq12QK; i++ {
		b := w[i*iq1sBlockBytes : (i+1)*iq1sBlockBytes]
		xb := x[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		var bs float32
		for ib := range 8 {
			h := binary.LittleEndian.Uint16(b[iq1sQh+2*ib:])
			qs := b[iq1sQs+4*ib : iq1sQs+4*ib+4]
			xs := xb[32*ib : 32*ib+32]
			d0, s0 := iq1GroupDotF32(iq1sGrid[iq1sGridIndex(qs, h, 0)], xs[0:8])
			d1, s1 := iq1GroupDotF32(iq1sGrid[iq1sGridIndex(qs, h, 1)], xs[8:16])
			d2, s2 := iq1GroupDotF32(iq1sGrid[iq1sGridIndex(qs, h, 2)], xs[16:24])
			d3, s3 := iq1GroupDotF32(iq1sGrid[iq1sGridIndex(qs, h, 3)], xs[24:32])
			dl := d * float32(2*(h>>12&7)+1)
			bs += dl * ((d0 + d1 + d2 + d3) + iq1Delta[h>>15]*(s0+s1+s2+s3))
		}
		sum += float64(bs)
	}
	return float32(sum)
}

// quantizeIQ1S is ggml's quantize_iq1_s (quantize_row_iq1_s_impl per row).
// ggml requires an importance matrix; without one all weights are 1.
func quantizeIQ1S(dst []byte, src, imatrix []float32) {
	if imatrix == nil {
		imatrix = iq12Ones(len(src))
	}
	t := iq1Search()
	for i := 0; i < len(src)/iq12QK; i++ {
		iq1sQuantizeBlock(t, dst[i*iq1sBlockBytes:(i+1)*iq1sBlockBytes],
			src[i*iq12QK:(i+1)*iq12QK], imatrix[i*iq12QK:(i+1)*iq12QK])
	}
}

// iq1sGroupMaxEps is ggml's GROUP_MAX_EPS_IQ1_S.
const iq1sGroupMaxEps = 1e-12

// iq1sQuantizeBlock quantizes one block of 256 weights, the loop body of
// ggml's quantize_row_iq1_s_impl. Each 32-weight sub-block is split into
// levels -1, 0, +1 by an exhaustive search over the two boundaries in the
// sorted values (for both shift signs), then snapped to the grid.
func iq1sQuantizeBlock(t *iq12Search, y []byte, xbl, qwbl []float32) {
	const bs = 32
	xp := [3]float32{-1 + iq1sDelta, iq1sDelta, 1 + iq1sDelta}
	xm := [3]float32{-1 - iq1sDelta, -iq1sDelta, 1 - iq1sDelta}
	var (
		scales     [8]float32
		shifts     [8]int
		weight     [bs]float32
		L          [bs]int8
		idx        [bs]int
		sumx, sumw [bs + 1]float32
		index      [4]int
		maxScale   float32
		sumx2      float32
	)
	y = y[:iq1sBlockBytes]
	clear(y)
	for _, v := range xbl[:iq12QK] {
		sumx2 += float32(v * v)
	}
	sigma2 := 2 * sumx2 / iq12QK
	for ib := range 8 {
		xb := xbl[bs*ib : bs*ib+bs]
		qw := qwbl[bs*ib : bs*ib+bs]
		for i := range bs {
			weight[i] = qw[i] * iq12Sqrt(sigma2+float32(xb[i]*xb[i]))
		}
		maxv := abs32(xb[0])
		for _, v := range xb[1:] {
			maxv = iq12Max(maxv, abs32(v))
		}
		if maxv < iq1sGroupMaxEps {
			scales[ib], shifts[ib] = 0, 1
			continue
		}
		iq1SortIndex(idx[:], xb)
		for j, i := range idx {
			sumx[j+1] = sumx[j] + float32(weight[i]*xb[i])
			sumw[j+1] = sumw[j] + weight[i]
		}
		bestScore, scale := float32(-math.MaxFloat32), maxv
		besti1, besti2, bestShift := -1, -1, 0
		for i1 := 0; i1 <= bs; i1++ {
			for i2 := i1; i2 <= bs; i2++ {
				a, b, c := sumx[i1]-sumx[0], sumx[i2]-sumx[i1], sumx[bs]-sumx[i2]
				wa, wb, wc := sumw[i1]-sumw[0], sumw[i2]-sumw[i1], sumw[bs]-sumw[i2]
				for _, sh := range [2]int{1, -1} {
					x3 := &xp
					if sh < 0 {
						x3 = &xm
					}
					sumqx := float32(a*x3[0]) + float32(b*x3[1]) + float32(c*x3[2])
					sumq2 := float32(wa*x3[0]*x3[0]) + float32(wb*x3[1]*x3[1]) + float32(wc*x3[2]*x3[2])
					if sumq2 > 0 && sumqx*sumqx > bestScore*sumq2 {
						scale = sumqx / sumq2
						bestScore = scale * sumqx
						besti1, besti2, bestShift = i1, i2, sh
					}
				}
			}
		}
		if besti1 < 0 || besti2 < 0 || bestShift == 0 {
			scales[ib], shifts[ib] = 0, 1
			continue
		}
		iq1SplitLevels(L[:], idx[:], besti1, besti2)
		if scale < 0 {
			for j := range L {
				L[j] = 2 - L[j]
			}
			scale, bestShift = -scale, -bestShift
		}
		xx := &xp
		if bestShift != 1 {
			xx = &xm
		}
		allOnGrid := true
		for k := range bs / 8 {
			gi := t.lookup(iq2LatticeIndex(L[8*k : 8*k+8]))
			if gi < 0 {
				allOnGrid = false
				gi = iq1BestNeighbour2(t, t.neighboursOf(iq2LatticeIndex(L[8*k:8*k+8])), xb[8*k:], weight[8*k:], scale, xx, L[8*k:])
			}
			index[k] = gi
		}
		if !allOnGrid {
			var sumqx, sumq2 float32
			for k, gi := range index {
				sumqx, sumq2 = iq1GroupSums(t, gi, xx, xb[8*k:], weight[8*k:], sumqx, sumq2)
			}
			if sumqx > 0 && sumq2 > 0 {
				scale = sumqx / sumq2
			}
		}
		var h uint16
		for k, gi := range index {
			y[iq1sQs+4*ib+k] = uint8(gi)
			h |= uint16(gi>>8) << (3 * k)
		}
		binary.LittleEndian.PutUint16(y[iq1sQh+2*ib:], h)
		scales[ib], shifts[ib] = scale, bestShift
		maxScale = iq12Max(maxScale, scale)
	}
	if maxScale == 0 {
		return
	}
	d := maxScale / 15
	binary.LittleEndian.PutUint16(y, F32ToFP16(d*1.125))
	id := 1 / d
	for ib, s := range scales {
		l := iq12NearestInt(0.5 * (float32(id*s) - 1))
		l = max(0, min(7, l))
		if shifts[ib] == -1 {
			l |= 8
		}
		h := binary.LittleEndian.Uint16(y[iq1sQh+2*ib:])
		binary.LittleEndian.PutUint16(y[iq1sQh+2*ib:], h|uint16(l)<<12)
	}
}

// iq1SortIndex sets idx to 0..len(idx)-1 ordered by x[idx[j]] ascending,
// ties in index order: the order glibc's qsort (a stable merge sort for
// such small arrays) gives ggml's (value, index) pairs with
// iq1_sort_helper, which compares values only.
func iq1SortIndex(idx []int, x []float32) {
	x = x[:len(idx)]
	for j := range idx {
		idx[j] = j
		for k := j; k > 0 && x[idx[k-1]] > x[idx[k]]; k-- {
			idx[k-1], idx[k] = idx[k], idx[k-1]
		}
	}
}

// iq1SplitLevels assigns level 0 to the sorted positions below i1, 1 to
// those from i1 below i2 and 2 to the rest.
func iq1SplitLevels(L []int8, idx []int, i1, i2 int) {
	for j, i := range idx {
		switch {
		case j < i1:
			L[i] = 0
		case j < i2:
			L[i] = 1
		default:
			L[i] = 2
		}
	}
}

// iq1GroupSums adds Σw·q·x and Σw·q² of the group of 8 at grid index gi to
// the running sums, q being the level value xx[l] of each weight.
func iq1GroupSums(t *iq12Search, gi int, xx *[3]float32, xb, weight []float32, sumqx, sumq2 float32) (float32, float32) {
	xb, weight = xb[:8], weight[:8]
	pg := &t.grid[gi]
	for j := range 8 {
		w := weight[j]
		q := xx[(pg[j]-1)/2]
		sumqx += float32(w * q * xb[j])
		sumq2 += float32(w * q * q)
	}
	return sumqx, sumq2
}

// iq1BestNeighbour2 is ggml's iq1_find_best_neighbour2: among the
// neighbours of a lattice point, the grid point whose values xx[level]
// times scale are closest to xval in the weighted squared distance. It
// writes the point's levels to L and returns its grid index (the first
// neighbour when no distance compares, which only NaN or infinite input
// reaches, where ggml aborts).
func iq1BestNeighbour2(t *iq12Search, neighbours []uint16, xval, weight []float32, scale float32, xx *[3]float32, L []int8) int {
	xval, weight, L = xval[:8], weight[:8], L[:8]
	best := float32(math.MaxFloat32)
	index := int(neighbours[0])
	for _, nb := range neighbours {
		pg := &t.grid[nb]
		var d2 float32
		for i := range 8 {
			diff := float32(scale*xx[(pg[i]-1)/2]) - xval[i]
			d2 += float32(weight[i] * diff * diff)
		}
		if d2 < best {
			best = d2
			index = int(nb)
		}
	}
	pg := &t.grid[index]
	for i := range 8 {
		L[i] = (pg[i] - 1) / 2
	}
	return index
}
