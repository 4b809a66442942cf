package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// IQ2_XS: 2.3125 bits per weight. A block of 256 weights is an fp16 d, 32
// little-endian uint16 groups of 8 weights (9-bit index into iq2xsGrid, 7
// sign bits above it, see ksignsIQ2XS) and 8 scale bytes, one per 32
// weights: the low nibble s scales the first 16, the high nibble the last
// 16. Weight value: d*(0.5+s)*0.25*grid*sign.
const (
	iq2xsBlockBytes = 74
	iq2xsQs         = 2  // offset of the groups
	iq2xsScales     = 66 // offset of the scales
)

func init() {
	register(&Format{
		Type:         gguf.TypeIQ2_XS,
		VecDot:       gguf.TypeQ8_K,
		NeedsImatrix: true,
		Dequantize:   dequantizeIQ2XS,
		Quantize:     quantizeIQ2XS,
		Dot:          dotIQ2XSSIMD, // simdorder.go
		DotF32:       dotF32IQ2XS,
	})
}

func dequantizeIQ2XS(dst []float32, src []byte) {
	for i := 0; i < len(dst)/iq12QK; i++ {
		b := src[i*iq2xsBlockBytes : (i+1)*iq2xsBlockBytes]
		y := dst[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		qs := b[iq2xsQs : iq2xsQs+64]
		for ib, sc := range b[iq2xsScales : iq2xsScales+8] {
			db := [2]float32{d * (0.5 + float32(sc&0xf)) * 0.25, d * (0.5 + float32(sc>>4)) * 0.25}
			for l := range 4 {
				q := binary.LittleEndian.Uint16(qs[8*ib+2*l:])
				iq2DequantGroup(y[32*ib+8*l:], db[l/2], iq2xsGrid[q&511], ksignsIQ2XS[q>>9])
			}
		}
	}
}

// iq2xsGroupDot is the integer dot of the IQ2_XS group q (index and signs)
// with 8 q8 activations.
func iq2xsGroupDot(q uint16, q8 []byte) int32 {
	return iq2GroupDot(iq2xsGrid[q&511], ksignsIQ2XS[q>>9], q8)
}

func dotF32IQ2XS(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i < len(x)/iq12QK; i++ {
		b := w[i*iq2xsBlockBytes : (i+1)*iq2xsBlockBytes]
		xb := x[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		qs := b[iq2xsQs : iq2xsQs+64]
		var bs float32
		for ib, sc := range b[iq2xsScales : iq2xsScales+8] {
			g := qs[8*ib : 8*ib+8]
			xs := xb[32*ib : 32*ib+32]
			q0 := binary.LittleEndian.Uint16(g[0:])
			q1 := binary.LittleEndian.Uint16(g[2:])
			q2 := binary.LittleEndian.Uint16(g[4:])
			q3 := binary.LittleEndian.Uint16(g[6:])
			s1 := iq2GroupDotF32(iq2xsGrid[q0&511], ksignsIQ2XS[q0>>9], xs[0:8]) +
				iq2GroupDotF32(iq2xsGrid[q1&511], ksignsIQ2XS[q1>>9], xs[8:16])
			s2 := iq2GroupDotF32(iq2xsGrid[q2&511], ksignsIQ2XS[q2>>9], xs[16:24]) +
				iq2GroupDotF32(iq2xsGrid[q3&511], ksignsIQ2XS[q3>>9], xs[24:32])
			bs += float32(d*(0.5+float32(sc&0xf))*0.25)*s1 + float32(d*(0.5+float32(sc>>4))*0.25)*s2
		}
		sum += float64(bs)
	}
	return float32(sum)
}

// quantizeIQ2XS is ggml's quantize_iq2_xs (quantize_row_iq2_xs_impl per
// row). ggml requires an importance matrix; without one all weights are 1.
func quantizeIQ2XS(dst []byte, src, imatrix []float32) {
	if imatrix == nil {
		imatrix = iq12Ones(len(src))
	}
	t := iq2xsSearch()
	for i := 0; i < len(src)/iq12QK; i++ {
		iq2xsQuantizeBlock(t, dst[i*iq2xsBlockBytes:(i+1)*iq2xsBlockBytes],
			src[i*iq12QK:(i+1)*iq12QK], imatrix[i*iq12QK:(i+1)*iq12QK])
	}
}

// iq2xsQuantizeBlock quantizes one block of 256 weights, the loop body of
// ggml's quantize_row_iq2_xs_impl.
func iq2xsQuantizeBlock(t *iq12Search, y []byte, xbl, qwbl []float32) {
	var (
		scales     [16]float32
		weight     [16]float32
		xval       [16]float32
		waux       [16]float32
		blockSigns [2]uint8
		q2         [32]uint16
		maxScale   float32
		sumx2      float32
	)
	for _, v := range xbl[:iq12QK] {
		sumx2 += float32(v * v)
	}
	sigma2 := sumx2 / iq12QK
	for ib := range 16 {
		xb := xbl[16*ib : 16*ib+16]
		qw := qwbl[16*ib : 16*ib+16]
		for i := range 16 {
			weight[i] = qw[i] * iq12Sqrt(sigma2+float32(xb[i]*xb[i]))
		}
		for i := range 16 {
			waux[i] = iq12Sqrt(weight[i])
		}
		for k := range 2 {
			blockSigns[k] = iq2FoldSigns(xval[8*k:8*k+8], xb[8*k:8*k+8], weight[8*k:8*k+8])
		}
		maxv := xval[0]
		for _, v := range xval[1:] {
			maxv = iq12Max(maxv, v)
		}
		if maxv < iq12GroupMaxEps {
			scales[ib] = 0
			continue
		}
		scale, L := iq2Search16(t, &xval, &weight, &waux, maxv)
		if scale < 0 {
			scale = -scale
			for k := range blockSigns {
				blockSigns[k] = ^blockSigns[k] & 127
			}
		}
		for k := range 2 {
			gi := max(t.lookup(iq2LatticeIndex(L[8*k:8*k+8])), 0) // ggml aborts when off the grid
			q2[2*ib+k] = uint16(gi) | uint16(blockSigns[k])<<9
		}
		scales[ib] = scale
		maxScale = iq12Max(maxScale, scale)
	}
	clear(y[:iq2xsBlockBytes])
	if maxScale == 0 {
		return
	}
	d := maxScale / 31
	binary.LittleEndian.PutUint16(y, F32ToFP16(d))
	id := 1 / d
	for ib, s := range scales {
		l := iq12NearestInt(0.5 * (float32(id*s) - 1))
		l = max(0, min(15, l))
		y[iq2xsScales+ib/2] |= uint8(l << (4 * (ib % 2)))
	}
	for i, v := range q2 {
		binary.LittleEndian.PutUint16(y[iq2xsQs+2*i:], v)
	}
}

// iq2Search16 is the grid search that ggml's quantize_row_iq2_xs_impl and
// quantize_row_iq2_s_impl run on a sub-block of 16 weights (two groups of
// 8) whose largest value maxv is above the format's epsilon: it tries 19
// scales around maxv/5, snapping each group to the grid, keeps the best
// weighted fit, then re-snaps the groups that were off the grid at the
// final scale. It returns the scale and the levels of both groups.
func iq2Search16(t *iq12Search, xval, weight, waux *[16]float32, maxv float32) (scale float32, L [16]int8) {
	const kMaxQ = 3
	var (
		best   float32
		Laux   [16]int8
		onGrid = [2]bool{true, true}
	)
	scale = maxv / (2*kMaxQ - 1)
	for is := -9; is <= 9; is++ {
		id := (2*kMaxQ - 1 + float32(float32(is)*0.1)) / maxv
		thisScale := 1 / id
		var onGridAux [2]bool
		for k := range 2 {
			u := iq2RoundGroup(xval[8*k:8*k+8], id, Laux[8*k:8*k+8])
			onGridAux[k] = t.lookup(u) >= 0
			if !onGridAux[k] {
				iq2BestNeighbour(t, t.neighboursOf(u), xval[8*k:], waux[8*k:], thisScale, Laux[8*k:])
			}
		}
		sumqx, sumq2 := iq2Sums(xval[:], weight[:], Laux[:])
		if sumq2 > 0 && sumqx*sumqx > best*sumq2 {
			scale = sumqx / sumq2
			best = scale * sumqx
			L = Laux
			onGrid = onGridAux
		}
	}
	if (!onGrid[0] || !onGrid[1]) && scale > 0 {
		id := 1 / scale
		for k := range 2 {
			if onGrid[k] {
				continue
			}
			u := iq2RoundGroup(xval[8*k:8*k+8], id, L[8*k:8*k+8])
			if t.lookup(u) < 0 {
				iq2BestNeighbour(t, t.neighboursOf(u), xval[8*k:], waux[8*k:], scale, L[8*k:])
			}
		}
		sumqx, sumq2 := iq2Sums(xval[:], weight[:], L[:])
		if sumq2 > 0 {
			scale = sumqx / sumq2
		}
	}
	return scale, L
}
