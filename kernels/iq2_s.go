package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// IQ2_S: 2.5625 bits per weight. A block of 256 weights is an fp16 d, 32
// low index bytes (one per group of 8), 32 sign bytes (8 explicit signs per
// group), 8 bytes of high index bits (2 bits per group: 10-bit indices into
// iq2sGrid) and 8 scale bytes as in IQ2_XS. Weight value:
// d*(0.5+s)*0.25*grid*sign.
const (
	iq2sBlockBytes = 82
	iq2sQs         = 2  // offset of the low index bytes
	iq2sSigns      = 34 // offset of the sign bytes
	iq2sQh         = 66 // offset of the high index bits
	iq2sScales     = 74 // offset of the scales
)

func init() {
	register(&Format{
		Type:       gguf.TypeIQ2_S,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeIQ2S,
		Quantize:   quantizeIQ2S,
		Dot:        dotIQ2SSIMD, // simdorder.go
		DotF32:     dotF32IQ2S,
	})
}

// iq2sIndex returns the grid index of group l (0..3) of the 32 weights
// whose low index bytes are qs and high bits qh.
func iq2sIndex(qs []byte, qh uint8, l int) uint16 {
	return uint16(qs[l]) | uint16(qh)<<(8-2*l)&0x300
}

func dequantizeIQ2S(dst []float32, src []byte) {
	for i := 0; i < len(dst)/iq12QK; i++ {
		b := src[i*iq2sBlockBytes : (i+1)*iq2sBlockBytes]
		y := dst[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		qh := b[iq2sQh : iq2sQh+8]
		for ib, sc := range b[iq2sScales : iq2sScales+8] {
			db := [2]float32{d * (0.5 + float32(sc&0xf)) * 0.25, d * (0.5 + float32(sc>>4)) * 0.25}
			qs := b[iq2sQs+4*ib : iq2sQs+4*ib+4]
			signs := b[iq2sSigns+4*ib : iq2sSigns+4*ib+4]
			for l := range 4 {
				iq2DequantGroup(y[32*ib+8*l:], db[l/2], iq2sGrid[iq2sIndex(qs, qh[ib], l)], signs[l])
			}
		}
	}
}

func dotF32IQ2S(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i < len(x)/iq12QK; i++ {
		b := w[i*iq2sBlockBytes : (i+1)*iq2sBlockBytes]
		xb := x[i*iq12QK : (i+1)*iq12QK]
		d := iq12FP16(b)
		qh := b[iq2sQh : iq2sQh+8]
		var bs float32
		for ib, sc := range b[iq2sScales : iq2sScales+8] {
			qs := b[iq2sQs+4*ib : iq2sQs+4*ib+4]
			signs := b[iq2sSigns+4*ib : iq2sSigns+4*ib+4]
			xs := xb[32*ib : 32*ib+32]
			h := qh[ib]
			s1 := iq2GroupDotF32(iq2sGrid[iq2sIndex(qs, h, 0)], signs[0], xs[0:8]) +
				iq2GroupDotF32(iq2sGrid[iq2sIndex(qs, h, 1)], signs[1], xs[8:16])
			s2 := iq2GroupDotF32(iq2sGrid[iq2sIndex(qs, h, 2)], signs[2], xs[16:24]) +
				iq2GroupDotF32(iq2sGrid[iq2sIndex(qs, h, 3)], signs[3], xs[24:32])
			bs += float32(d*(0.5+float32(sc&0xf))*0.25)*s1 + float32(d*(0.5+float32(sc>>4))*0.25)*s2
		}
		sum += float64(bs)
	}
	return float32(sum)
}

// quantizeIQ2S is ggml's quantize_iq2_s (quantize_row_iq2_s_impl per row),
// which uses the importance matrix when given one.
func quantizeIQ2S(dst []byte, src, imatrix []float32) {
	t := iq2sSearch()
	for i := 0; i < len(src)/iq12QK; i++ {
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i*iq12QK : (i+1)*iq12QK]
		}
		iq2sQuantizeBlock(t, dst[i*iq2sBlockBytes:(i+1)*iq2sBlockBytes], src[i*iq12QK:(i+1)*iq12QK], qw)
	}
}

// iq2sGroupMaxEps is ggml's GROUP_MAX_EPS_IQ2_S.
const iq2sGroupMaxEps = 1e-8

// iq2sQuantizeBlock quantizes one block of 256 weights (qwbl nil: no
// importance matrix), the loop body of ggml's quantize_row_iq2_s_impl.
func iq2sQuantizeBlock(t *iq12Search, y []byte, xbl, qwbl []float32) {
	var (
		scales     [16]float32
		weight     [16]float32
		xval       [16]float32
		waux       [16]float32
		blockSigns [2]uint8
		maxScale   float32
		sumx2      float32
	)
	y = y[:iq2sBlockBytes]
	clear(y)
	for _, v := range xbl[:iq12QK] {
		sumx2 += float32(v * v)
	}
	sigma2 := 2 * sumx2 / iq12QK
	for ib := range 16 {
		xb := xbl[16*ib : 16*ib+16]
		if qwbl != nil {
			qw := qwbl[16*ib : 16*ib+16]
			for i := range 16 {
				weight[i] = qw[i] * iq12Sqrt(sigma2+float32(xb[i]*xb[i]))
			}
		} else {
			for i := range 16 {
				weight[i] = float32(0.25*sigma2) + float32(xb[i]*xb[i])
			}
		}
		for i := range 16 {
			waux[i] = iq12Sqrt(weight[i])
		}
		for k := range 2 {
			var s uint8
			for i, v := range xb[8*k : 8*k+8] {
				if v >= 0 {
					xval[8*k+i] = v
				} else {
					xval[8*k+i] = -v
					s |= 1 << i
				}
			}
			blockSigns[k] = s
		}
		maxv := xval[0]
		for _, v := range xval[1:] {
			maxv = iq12Max(maxv, v)
		}
		if maxv < iq2sGroupMaxEps {
			scales[ib] = 0
			continue
		}
		scale, L := iq2Search16(t, &xval, &weight, &waux, maxv)
		if scale < 0 {
			scale = -scale
			blockSigns[0], blockSigns[1] = ^blockSigns[0], ^blockSigns[1]
		}
		for k := range 2 {
			gi := max(t.lookup(iq2LatticeIndex(L[8*k:8*k+8])), 0) // ggml aborts when off the grid
			i8 := 2*ib + k
			y[iq2sQs+i8] = uint8(gi)
			y[iq2sQh+i8/4] |= uint8(gi>>8) << (2 * (i8 % 4))
			y[iq2sSigns+i8] = blockSigns[k]
		}
		scales[ib] = scale
		maxScale = iq12Max(maxScale, scale)
	}
	if maxScale == 0 {
		return
	}
	d := maxScale / 31
	binary.LittleEndian.PutUint16(y, F32ToFP16(d*0.9875))
	id := 1 / d
	for ib, s := range scales {
		l := iq12NearestInt(0.5 * (float32(id*s) - 1))
		l = max(0, min(15, l))
		y[iq2sScales+ib/2] |= uint8(l << (4 * (ib % 2)))
	}
}
