package kernels

import "github.com/inference-x/inference-x/gguf"

// Q6_K (ggml-common.h block_q6_K), 210 bytes per 256 weights:
//
//	ql      128 bytes: low 4 bits. In 128-element half h, byte l of
//	        ql[64h:] holds element 128h+l (low nibble) and 128h+64+l (high),
//	        byte 32+l holds 128h+32+l and 128h+96+l.
//	qh      64 bytes: high 2 bits; byte l of qh[32h:] holds those of
//	        elements 128h+l, +32, +64, +96 in bits 0-1, 2-3, 4-5, 6-7.
//	scales  16 int8 scales, one per 16 elements
//	d       fp16 super-block scale
//
// Weight = d*scale_j*(q-32).
const q6KBlockBytes = 210

func init() {
	register(&Format{
		Type:       gguf.TypeQ6_K,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeQ6K,
		Quantize:   quantizeQ6K,
		Dot:        dotQ6K,
		DotF32:     dotF32Q6K,
	})
}

func dequantizeQ6K(dst []float32, src []byte) {
	nb := len(dst) / kqBlock
	for i := 0; i < nb; i++ {
		b := (*[q6KBlockBytes]byte)(src[i*q6KBlockBytes:])
		y := (*[kqBlock]float32)(dst[i*kqBlock:])
		d := kqHalf(b[:], 208)
		for h := 0; h < 2; h++ {
			sc := (*[8]byte)(b[192+8*h:])
			for g := 0; g < 2; g++ {
				// ggml computes d*scale first, then times q-32.
				q6KGroupDequant((*[48]byte)(b[64*h+16*g:]), (*[16]byte)(b[128+32*h+16*g:]),
					(*[112]float32)(y[128*h+16*g:]), d*float32(int8(sc[g])), d*float32(int8(sc[g+2])),
					d*float32(int8(sc[g+4])), d*float32(int8(sc[g+6])))
			}
		}
	}
}

// q6KGroupDequant decodes the four 16-element rows that share ql[0:16],
// ql[32:48] and qh[0:16] into y[0:16], y[32:48], y[64:80], y[96:112] with
// the row scales d1..d4.
func q6KGroupDequant(ql *[48]byte, qh *[16]byte, y *[112]float32, d1, d2, d3, d4 float32) {
	for l := 0; l < 16; l++ {
		a, c, h := ql[l], ql[l+32], qh[l]
		yl := (*[97]float32)(y[l:])
		yl[0] = d1 * q6KLevel[a&0xF|(h&3)<<4]
		yl[32] = d2 * q6KLevel[c&0xF|(h>>2&3)<<4]
		yl[64] = d3 * q6KLevel[a>>4|(h>>4&3)<<4]
		yl[96] = d4 * q6KLevel[c>>4|(h>>6)<<4]
	}
}

// quantizeQ6K is quantize_row_q6_K_ref, or quantize_row_q6_K_impl with an
// importance matrix (the same search with the imatrix as weights).
func quantizeQ6K(dst []byte, src []float32, imatrix []float32) {
	nb := len(src) / kqBlock
	var L [kqBlock]int8
	var scales [16]float32
	for i := 0; i < nb; i++ {
		b := (*[q6KBlockBytes]byte)(dst[i*q6KBlockBytes:])
		x := (*[kqBlock]float32)(src[i*kqBlock:])
		var maxScale, maxAbsScale float32
		for ib := 0; ib < 16; ib++ {
			var qw []float32
			if imatrix != nil {
				qw = imatrix[i*kqBlock+16*ib : i*kqBlock+16*ib+16]
			}
			s := kqMakeQXQuants(32, x[16*ib:16*ib+16], L[16*ib:16*ib+16], qw)
			scales[ib] = s
			if as := abs32(s); as > maxAbsScale {
				maxAbsScale, maxScale = as, s
			}
		}
		if maxAbsScale < kqGroupMaxEps {
			*b = [q6KBlockBytes]byte{}
			continue
		}
		iscale := -128 / maxScale
		kqPutHalf(b[:], 208, 1/iscale)
		for ib := 0; ib < 16; ib++ {
			b[192+ib] = byte(int8(min(127, kqNearestInt(iscale*scales[ib]))))
		}
		d := kqHalf(b[:], 208)
		for j := 0; j < 16; j++ {
			dl := d * float32(int8(b[192+j]))
			if dl == 0 {
				continue
			}
			for ii, v := range x[16*j : 16*j+16] {
				l := kqMax32(-32, kqMin32(31, kqNearestInt(v/dl)))
				L[16*j+ii] = int8(l + 32)
			}
		}
		for h := 0; h < 2; h++ {
			ql := (*[64]byte)(b[64*h:])
			qh := (*[32]byte)(b[128+32*h:])
			Lh := (*[128]int8)(L[128*h:])
			for l := 0; l < 32; l++ {
				q1, q2, q3, q4 := uint8(Lh[l]), uint8(Lh[l+32]), uint8(Lh[l+64]), uint8(Lh[l+96])
				ql[l] = q1&0xF | (q3&0xF)<<4
				ql[l+32] = q2&0xF | (q4&0xF)<<4
				qh[l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
			}
		}
	}
}

// dotF32Q6K: each 16-weight group contributes d*scale_j*Σ(q-32)*x.
func dotF32Q6K(w []byte, x []float32) float32 {
	nb := len(x) / kqBlock
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[q6KBlockBytes]byte)(w[i*q6KBlockBytes:])
		xb := (*[kqBlock]float32)(x[i*kqBlock:])
		var bsum float32
		for h := 0; h < 2; h++ {
			sc := (*[8]byte)(b[192+8*h:])
			for g := 0; g < 2; g++ {
				o := 64*h + 16*g
				s1, s2, s3, s4 := q6KGroupF32((*[48]byte)(b[o:]), (*[16]byte)(b[128+32*h+16*g:]), (*[112]float32)(xb[128*h+16*g:]))
				bsum += float32(float32(int8(sc[g]))*s1) + float32(float32(int8(sc[g+2]))*s2) +
					float32(float32(int8(sc[g+4]))*s3) + float32(float32(int8(sc[g+6]))*s4)
			}
		}
		sum += float32(kqHalf(b[:], 208) * bsum)
	}
	return sum
}

// q6KGroupF32 returns Σ(q-32)*x for the four 16-element rows that share
// the ql bytes ql[0:16], ql[32:48] and the qh bytes qh[0:16] (rows at x[0],
// x[32], x[64], x[96]).
func q6KGroupF32(ql *[48]byte, qh *[16]byte, x *[112]float32) (s1, s2, s3, s4 float32) {
	for l := 0; l < 16; l++ {
		a, c, h := ql[l], ql[l+32], qh[l]
		xl := (*[97]float32)(x[l:])
		s1 += float32(q6KLevel[a&0xF|(h&3)<<4] * xl[0])
		s2 += float32(q6KLevel[c&0xF|(h>>2&3)<<4] * xl[32])
		s3 += float32(q6KLevel[a>>4|(h>>4&3)<<4] * xl[64])
		s4 += float32(q6KLevel[c>>4|(h>>6)<<4] * xl[96])
	}
	return s1, s2, s3, s4
}

// q6KLevel maps a 6-bit Q6_K level q to q-32 as float32.
var q6KLevel = func() (t [64]float32) {
	for i := range t {
		t[i] = float32(i - 32)
	}
	return t
}()
