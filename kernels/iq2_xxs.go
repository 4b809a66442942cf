package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// IQ2_XXS: 2.0625 bits per weight. A block of 256 weights is an fp16 d and
// 8 sub-blocks of 32 weights in two little-endian uint32s: the first holds
// four 8-bit indices into iq2xxsGrid (one per group of 8), the second four
// 7-bit sign masks (bits 0..27, see ksignsIQ2XS) and a 4-bit scale s in
// bits 28..31. Weight value: d*(0.5+s)*0.25*grid*sign.
const (
	iq2xxsBlockBytes = 66
	iq2xxsQs         = 2 // offset of the sub-blocks
)

func init() {
	register(&Format{
		Type:         gguf.TypeIQ2_XXS,
		VecDot:       gguf.TypeQ8_K,
		NeedsImatrix: true,
		Dequantize:   dequantizeIQ2XXS,
		Quantize:     quantizeIQ2XXS,
		Dot:          dotIQ2XXSSIMD, // simdorder.go
		DotF32:       dotF32IQ2XXS,
	})
}

func dequantizeIQ2XXS(dst []float32, src []byte) {
	for i := 0; i < len(dst)/iq12QK; i++ {
		b := src[i*iq2xxsBlockBytes : (i+1)*iq2xxsBlockBytes]
		y := dst[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		for ib := range 8 {
			idx := binary.LittleEndian.Uint32(b[iq2xxsQs+8*ib:])
			aux := binary.LittleEndian.Uint32(b[iq2xxsQs+8*ib+4:])
			db := d * (0.5 + float32(aux>>28)) * 0.25
			for l := range 4 {
				iq2DequantGroup(y[32*ib+8*l:], db, iq2xxsGrid[uint8(idx>>(8*l))], ksignsIQ2XS[aux>>(7*l)&127])
			}
		}
	}
}

func dotF32IQ2XXS(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i < len(x)/iq12QK; i++ {
		b := w[i*iq2xxsBlockBytes : (i+1)*iq2xxsBlockBytes]
		xb := x[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		var bs float32
		for ib := range 8 {
			idx := binary.LittleEndian.Uint32(b[iq2xxsQs+8*ib:])
			aux := binary.LittleEndian.Uint32(b[iq2xxsQs+8*ib+4:])
			xs := xb[32*ib : 32*ib+32]
			s := iq2GroupDotF32(iq2xxsGrid[uint8(idx)], ksignsIQ2XS[aux&127], xs[0:8]) +
				iq2GroupDotF32(iq2xxsGrid[uint8(idx>>8)], ksignsIQ2XS[aux>>7&127], xs[8:16]) +
				iq2GroupDotF32(iq2xxsGrid[uint8(idx>>16)], ksignsIQ2XS[aux>>14&127], xs[16:24]) +
				iq2GroupDotF32(iq2xxsGrid[uint8(idx>>24)], ksignsIQ2XS[aux>>21&127], xs[24:32])
			bs += float32(d*(0.5+float32(aux>>28))*0.25) * s
		}
		sum += float64(bs)
	}
	return float32(sum)
}

// quantizeIQ2XXS is ggml's quantize_iq2_xxs (quantize_row_iq2_xxs_impl per
// row). ggml requires an importance matrix; without one all weights are 1.
func quantizeIQ2XXS(dst []byte, src, imatrix []float32) {
	if imatrix == nil {
		imatrix = iq12Ones(len(src))
	}
	t := iq2xxsSearch()
	for i := 0; i < len(src)/iq12QK; i++ {
		iq2xxsQuantizeBlock(t, dst[i*iq2xxsBlockBytes:(i+1)*iq2xxsBlockBytes],
			src[i*iq12QK:(i+1)*iq12QK], imatrix[i*iq12QK:(i+1)*iq12QK])
	}
}

// iq2xxsQuantizeBlock quantizes one block of 256 weights, the loop body of
// ggml's quantize_row_iq2_xxs_impl.
func iq2xxsQuantizeBlock(t *iq12Search, y []byte, xbl, qwbl []float32) {
	const kMaxQ = 3
	var (
		scales     [8]float32
		weight     [32]float32
		xval       [32]float32
		waux       [32]float32
		L, Laux    [32]int8
		blockSigns [4]uint8
		q2         [16]uint32
		maxScale   float32
		sumx2      float32
	)
	for _, v := range xbl[:iq12QK] {
		sumx2 += float32(v * v)
	}
	sigma2 := sumx2 / iq12QK
	for ib := range 8 {
		xb := xbl[32*ib : 32*ib+32]
		qw := qwbl[32*ib : 32*ib+32]
		for i := range 32 {
			weight[i] = qw[i] * iq12Sqrt(sigma2+float32(xb[i]*xb[i]))
		}
		for i := range 32 {
			waux[i] = iq12Sqrt(weight[i])
		}
		for k := range 4 {
			blockSigns[k] = iq2FoldSigns(xval[8*k:8*k+8], xb[8*k:8*k+8], weight[8*k:8*k+8])
		}
		maxv := xval[0]
		for _, v := range xval[1:] {
			maxv = iq12Max(maxv, v)
		}
		if maxv < iq12GroupMaxEps {
			scales[ib] = 0
			clear(L[:])
			continue
		}
		scale := iq2MakeQPQuants(kMaxQ+1, xval[:], L[:], weight[:])
		effMax := scale * kMaxQ
		if effMax <= 0 {
			scales[ib] = 0
			clear(L[:])
			continue
		}
		var best float32
		for is := -6; is <= 6; is++ {
			id := (2*kMaxQ - 1 + float32(float32(is)*0.1)) / effMax
			thisScale := 1 / id
			for k := range 4 {
				u := iq2RoundGroup(xval[8*k:8*k+8], id, Laux[8*k:8*k+8])
				if t.lookup(u) < 0 {
					iq2BestNeighbour(t, t.neighboursOf(u), xval[8*k:], waux[8*k:], thisScale, Laux[8*k:])
				}
			}
			sumqx, sumq2 := iq2Sums(xval[:], weight[:], Laux[:])
			if sumq2 > 0 && sumqx*sumqx > best*sumq2 {
				scale = sumqx / sumq2
				best = scale * sumqx
				L = Laux
			}
		}
		if scale > 0 {
			id := 1 / scale
			for k := range 4 {
				var lk [8]int8
				u := iq2RoundGroup(xval[8*k:8*k+8], id, lk[:])
				gi := t.lookup(u)
				if gi < 0 {
					gi = iq2BestNeighbour(t, t.neighboursOf(u), xval[8*k:], waux[8*k:], scale, L[8*k:])
				}
				pg := &t.grid[gi]
				for i := range 8 {
					L[8*k+i] = (pg[i] - 1) / 2
				}
			}
			sumqx, sumq2 := iq2Sums(xval[:], weight[:], L[:])
			if sumq2 > 0 {
				scale = sumqx / sumq2
			}
		}
		if scale < 0 {
			// ggml: "should never happen"; flip the scale and the signs.
			scale = -scale
			for k := range blockSigns {
				blockSigns[k] = ^blockSigns[k] & 127
			}
		}
		for k := range 4 {
			gi := max(t.lookup(iq2LatticeIndex(L[8*k:8*k+8])), 0) // ggml aborts when off the grid
			q2[2*ib] |= uint32(gi) << (8 * k)
			q2[2*ib+1] |= uint32(blockSigns[k]) << (7 * k)
		}
		scales[ib] = scale
		maxScale = iq12Max(maxScale, scale)
	}
	clear(y[:iq2xxsBlockBytes])
	if maxScale == 0 {
		return
	}
	d := maxScale / 31
	binary.LittleEndian.PutUint16(y, F32ToFP16(d))
	id := 1 / d
	for ib := range 8 {
		l := iq12NearestInt(0.5 * (float32(id*scales[ib]) - 1))
		l = max(0, min(15, l))
		q2[2*ib+1] |= uint32(l) << 28
	}
	for i, v := range q2 {
		binary.LittleEndian.PutUint32(y[iq2xxsQs+4*i:], v)
	}
}

// iq2FoldSigns is the sign handling of the IQ2_XXS/IQ2_XS quantizers for a
// group of 8: xval gets |xb| and the returned 7-bit mask the negative
// positions; with an odd count the least important weight keeps its sign
// flipped instead (the 8th sign is implied by parity).
func iq2FoldSigns(xval, xb, weight []float32) uint8 {
	xval, xb, weight = xval[:8], xb[:8], weight[:8]
	nflip := 0
	var s uint8
	for i, v := range xb {
		if v >= 0 {
			xval[i] = v
		} else {
			xval[i] = -v
			nflip++
			s |= 1 << i
		}
	}
	if nflip%2 != 0 {
		imin := 0
		minv := weight[0] * xb[0] * xb[0]
		for i := 1; i < 8; i++ {
			if ax := weight[i] * xb[i] * xb[i]; ax < minv {
				minv, imin = ax, i
			}
		}
		xval[imin] = -xval[imin]
		s ^= 1 << imin
	}
	return s & 127
}

// iq2RoundGroup rounds a group of 8 values to lattice levels 0..2 at the
// inverse scale id (level l stands for 2l+1), writes them to L and returns
// the lattice index.
func iq2RoundGroup(xval []float32, id float32, L []int8) int {
	xval, L = xval[:8], L[:8]
	u := 0
	for i, v := range xval {
		l := iq12NearestInt(0.5 * (float32(id*v) - 1))
		l = max(0, min(2, l))
		L[i] = int8(l)
		u |= l << (2 * i)
	}
	return u
}

// iq2LatticeIndex packs 8 levels into a lattice index the way ggml does
// (uint16_t u |= L[i] << 2*i).
func iq2LatticeIndex(L []int8) int {
	var u uint16
	for i, l := range L[:8] {
		u |= uint16(int(l) << (2 * i))
	}
	return int(u)
}

// iq2Sums returns the weighted sums Σw·x·q and Σw·q² for levels L (q=2l+1).
func iq2Sums(xval, weight []float32, L []int8) (sumqx, sumq2 float32) {
	weight, L = weight[:len(xval)], L[:len(xval)]
	for i, x := range xval {
		w := weight[i]
		q := float32(2*int(L[i]) + 1)
		sumqx += float32(w * x * q)
		sumq2 += float32(w * q * q)
	}
	return sumqx, sumq2
}
