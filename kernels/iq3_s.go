package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// IQ3_S: super-blocks of 256 weights, 110 bytes: fp16 d, 64 bytes qs (low
// 8 bits of 9-bit indices into iq3sGrid, 8 per 32-element sub-block),
// 8 bytes qh (bit k of qh[ib] is bit 8 of index k of sub-block ib), 32
// bytes of signs (one bit per weight) and 4 bytes of 4-bit sub-block
// scales s (two per byte, low nibble first). Weight =
// d·(1+2s)·magnitude·sign. The activation companion is Q8_K.

const iq3sBlockBytes = 110

// Offsets inside an IQ3_S block.
const (
	iq3sQS     = 2
	iq3sQH     = iq3sQS + 64
	iq3sSigns  = iq3sQH + 8
	iq3sScales = iq3sSigns + 32
)

func init() {
	register(&Format{
		Type:       gguf.TypeIQ3_S,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeIQ3S,
		Quantize:   quantizeIQ3S,
		Dot:        dotIQ3SSIMD, // simdorder.go
		DotF32:     dotF32IQ3S,
	})
}

// iq3sGroup returns the magnitudes of group pair l (weights 8l..8l+7) of
// sub-block ib, one per byte, from its two 9-bit grid indices.
func iq3sGroup(b []byte, ib, l int) uint64 {
	qh := uint16(b[iq3sQH+ib])
	qs := b[iq3sQS+8*ib+2*l:][:2]
	g1 := iq3sGrid[uint16(qs[0])|(qh<<(8-2*l))&256]
	g2 := iq3sGrid[uint16(qs[1])|(qh<<(7-2*l))&256]
	return uint64(g1) | uint64(g2)<<32
}

// iq3sScale returns the odd multiplier 1+2s of sub-block ib.
func iq3sScale(b []byte, ib int) int32 {
	return 1 + 2*int32(b[iq3sScales+ib/2]>>(4*(ib%2))&0xf)
}

func dequantizeIQ3S(dst []float32, src []byte) {
	for i := 0; i+256 <= len(dst); i += 256 {
		b := src[i/256*iq3sBlockBytes:][:iq3sBlockBytes]
		d := FP16ToF32(binary.LittleEndian.Uint16(b))
		for ib := 0; ib < 8; ib++ {
			db := d * float32(iq3sScale(b, ib))
			signs := b[iq3sSigns+4*ib:][:4]
			y := dst[i+32*ib:][:32]
			for l := 0; l < 4; l++ {
				iq3DequantGroup(y[8*l:], db, iq3Signed(iq3sGroup(b, ib, l), signs[l]))
			}
		}
	}
}

// quantizeIQ3S is quantize_row_iq3_s_impl, used by ggml with and without
// an importance matrix.
func quantizeIQ3S(dst []byte, src []float32, imatrix []float32) {
	lat := iq3SLattice()
	for i := 0; i+256 <= len(src); i += 256 {
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i : i+256]
		}
		quantizeIQ3SBlock(lat, dst[i/256*iq3sBlockBytes:][:iq3sBlockBytes], src[i:i+256], qw)
	}
}

// quantizeIQ3SBlock quantizes one super-block. Like ggml it advances the
// qs and signs positions only past sub-blocks that are not all zero, so a
// zero sub-block shifts the following sub-blocks' indices and signs
// forward (their qh bits and scales stay in place); the layout must match
// ggml's bytes, quirk included.
func quantizeIQ3SBlock(lat *iq3Lattice, b []byte, x []float32, qw []float32) {
	var (
		scales             [8]float32
		weight, waux, xval [32]float32
		L                  [32]int8
		maxScale           float32
	)
	clear(b)
	qs := b[iq3sQS:iq3sQH]
	qh := b[iq3sQH:iq3sSigns]
	signs := b[iq3sSigns:iq3sScales]
	sigma2 := iq3Sigma2(x)
	for ib := 0; ib < 8; ib++ {
		xb := x[32*ib : 32*ib+32]
		var qwb []float32
		if qw != nil {
			qwb = qw[32*ib : 32*ib+32]
		}
		iq3Weights(&weight, &waux, xb, qwb, sigma2)
		var blockSigns [4]uint8
		for k := 0; k < 4; k++ {
			var s uint8
			for i := 8 * k; i < 8*k+8; i++ {
				if xb[i] >= 0 {
					xval[i] = xb[i]
				} else {
					xval[i] = -xb[i]
					s |= 1 << (i - 8*k)
				}
			}
			blockSigns[k] = s
		}
		vmax := xval[0]
		for _, v := range xval[1:] {
			vmax = iq3Max(vmax, v)
		}
		L = [32]int8{}
		if vmax == 0 {
			scales[ib] = 0
			continue
		}
		scale := lat.search(&xval, &weight, &waux, &L, vmax, 9, false, true)
		if scale < 0 {
			scale = -scale
			for k := range blockSigns {
				blockSigns[k] = ^blockSigns[k]
			}
		}
		for k := 0; k < 8; k++ {
			gi := lat.gridIndex(L[4*k:])
			qs[k] = byte(gi)
			qh[ib] |= byte(gi>>8) << k
		}
		qs = qs[8:]
		copy(signs, blockSigns[:])
		signs = signs[4:]
		scales[ib] = scale
		maxScale = iq3Max(maxScale, scale)
	}
	if maxScale == 0 {
		return
	}
	d := maxScale / 31
	binary.LittleEndian.PutUint16(b, F32ToFP16(d*1.033))
	id := 1 / d
	for ib := 0; ib < 8; ib += 2 {
		b[iq3sScales+ib/2] = byte(iq3ScaleNibble(id, scales[ib]) | iq3ScaleNibble(id, scales[ib+1])<<4)
	}
}

// dotF32IQ3S decodes in registers: per sub-block the signed magnitudes
// times x in float32, scaled by 1+2s, summed per super-block, scaled by d.
func dotF32IQ3S(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+256 <= len(x); i += 256 {
		b := w[i/256*iq3sBlockBytes:][:iq3sBlockBytes]
		var bs float32
		for ib := 0; ib < 8; ib++ {
			signs := b[iq3sSigns+4*ib:][:4]
			xb := x[i+32*ib:][:32]
			var s float32
			for l := 0; l < 4; l++ {
				s += iq3GroupDotF32(iq3Signed(iq3sGroup(b, ib, l), signs[l]), xb[8*l:])
			}
			bs += float32(float32(iq3sScale(b, ib)) * s)
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b)) * bs)
	}
	return sum
}
