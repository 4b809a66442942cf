package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// IQ4_XS: super-blocks of 256 weights, 136 bytes: fp16 d, u16 scales_h
// (2 high bits per sub-block), 4 bytes scales_l (4 low bits per
// sub-block), 128 bytes of 4-bit indices into kvaluesIQ4NL packed per
// 32-element sub-block like IQ4_NL. Sub-block ib has the 6-bit scale
// ls = low | high<<4 and weight = d·(ls-32)·kvalues[index]. The activation
// companion is Q8_K.

const (
	iq4xsBlockBytes = 136
	// iq34Q8KBlockBytes is block_q8_K: f32 d, 256 int8, 16 int16 bsums.
	iq34Q8KBlockBytes = 292
)

func init() {
	register(&Format{
		Type:       gguf.TypeIQ4_XS,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeIQ4XS,
		Quantize:   quantizeIQ4XS,
		Dot:        dotIQ4XS,
		DotF32:     dotF32IQ4XS,
	})
}

// iq4xsScale returns the signed sub-block scale ls-32 of sub-block ib.
func iq4xsScale(b []byte, ib int) int32 {
	h := binary.LittleEndian.Uint16(b[2:])
	ls := int32(b[4+ib/2]>>(4*(ib%2)))&0xf | int32(h>>(2*ib)&3)<<4
	return ls - 32
}

func dequantizeIQ4XS(dst []float32, src []byte) {
	for i := 0; i+256 <= len(dst); i += 256 {
		b := src[i/256*iq4xsBlockBytes:][:iq4xsBlockBytes]
		d := FP16ToF32(binary.LittleEndian.Uint16(b))
		for ib := 0; ib < 8; ib++ {
			dl := d * float32(iq4xsScale(b, ib))
			qs := b[8+16*ib:][:16]
			y := dst[i+32*ib:][:32]
			for j, q := range qs {
				y[j] = dl * float32(kvaluesIQ4NL[q&0xf])
				y[j+16] = dl * float32(kvaluesIQ4NL[q>>4])
			}
		}
	}
}

// quantizeIQ4XS is quantize_iq4_xs: a scale search per 32-element
// sub-block (ntry = 7), then 6-bit sub-block scales relative to the
// largest one and a final nearest-level pass with the rounded scales.
func quantizeIQ4XS(dst []byte, src []float32, imatrix []float32) {
	for i := 0; i+256 <= len(src); i += 256 {
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i : i+256]
		}
		quantizeIQ4XSBlock(dst[i/256*iq4xsBlockBytes:][:iq4xsBlockBytes], src[i:i+256], qw)
	}
}

// quantizeIQ4XSBlock is quantize_row_iq4_nl_impl for a 256-element super
// block.
func quantizeIQ4XSBlock(b []byte, x []float32, qw []float32) {
	x = x[:256]
	var sigma2 float32
	for _, v := range x {
		sigma2 += float32(v * v)
	}
	sigma2 *= 2.0 / 256
	var (
		L                   [256]uint8
		scales              [8]float32
		w                   [32]float32
		maxScale, amaxScale float32
	)
	for ib := range scales {
		xb := x[32*ib : 32*ib+32]
		var qwb []float32
		if qw != nil {
			qwb = qw[32*ib : 32*ib+32]
		}
		iq4Weights(&w, xb, qwb, sigma2)
		d := iq4SubblockScale(xb, &w, L[32*ib:32*ib+32], 7)
		scales[ib] = d
		if ad := abs32(d); ad > amaxScale {
			amaxScale, maxScale = ad, d
		}
	}
	d := -maxScale / 32
	binary.LittleEndian.PutUint16(b, F32ToFP16(d))
	var id float32
	if d != 0 {
		id = 1 / d
	}
	var scalesH uint16
	scalesL := b[4:8]
	for ib, s := range scales {
		l := min(max(iq34NearestInt(id*s), -32), 31)
		dl := d * float32(l)
		var idl float32
		if dl != 0 {
			idl = 1 / dl
		}
		for j, v := range x[32*ib : 32*ib+32] {
			L[32*ib+j] = iq4BestIndex(idl * v)
		}
		l += 32
		if ib%2 == 0 {
			scalesL[ib/2] = uint8(l & 0xf)
		} else {
			scalesL[ib/2] |= uint8(l&0xf) << 4
		}
		scalesH |= uint16(l>>4) << (2 * ib)
	}
	binary.LittleEndian.PutUint16(b[2:], scalesH)
	for ib := 0; ib < 8; ib++ {
		iq4Pack(b[8+16*ib:], L[32*ib:])
	}
}

// dotF32IQ4XS decodes in registers: per sub-block the levels times x in
// float32, scaled by ls-32, summed per super-block, scaled by d.
func dotF32IQ4XS(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+256 <= len(x); i += 256 {
		b := w[i/256*iq4xsBlockBytes:][:iq4xsBlockBytes]
		var bs float32
		for ib := 0; ib < 8; ib++ {
			qs := b[8+16*ib:][:16]
			xb := x[i+32*ib:][:32]
			var s1, s2 float32
			for j, q := range qs {
				s1 += float32(float32(kvaluesIQ4NL[q&0xf]) * xb[j])
				s2 += float32(float32(kvaluesIQ4NL[q>>4]) * xb[j+16])
			}
			bs += float32(float32(iq4xsScale(b, ib)) * (s1 + s2))
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b)) * bs)
	}
	return sum
}
