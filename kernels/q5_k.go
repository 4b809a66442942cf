package kernels

import "github.com/inference-x/inference-x/gguf"

// Q5_K (ggml-common.h block_q5_K), 176 bytes per 256 weights:
//
//	d, dmin   fp16 super-block scales for the sub-block scales and mins
//	scales    12 bytes: eight 6-bit scales and eight 6-bit mins (kqScaleMinK4)
//	qh        32 bytes: bit 2c of byte l is the fifth bit of element 64c+l,
//	          bit 2c+1 that of element 64c+32+l
//	qs        128 bytes: low 4 bits, laid out as in Q4_K
//
// Weight = d*scale_j*q - dmin*min_j for the 32-element sub-block j.
const q5KBlockBytes = 176

func init() {
	register(&Format{
		Type:       gguf.TypeQ5_K,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeQ5K,
		Quantize:   quantizeQ5K,
		Dot:        dotQ5K,
		DotF32:     dotF32Q5K,
	})
}

func dequantizeQ5K(dst []float32, src []byte) {
	nb := len(dst) / kqBlock
	for i := 0; i < nb; i++ {
		b := (*[q5KBlockBytes]byte)(src[i*q5KBlockBytes:])
		y := (*[kqBlock]float32)(dst[i*kqBlock:])
		d, dmin := kqHalf(b[:], 0), kqHalf(b[:], 2)
		sc, m := kqUnpackScalesK4(b[4:16])
		qh := (*[32]byte)(b[16:])
		for c := 0; c < 4; c++ {
			q5KChunkDequant((*[32]byte)(b[48+32*c:]), qh, uint(2*c), (*[64]float32)(y[64*c:]),
				d*float32(sc[2*c]), dmin*float32(m[2*c]), d*float32(sc[2*c+1]), dmin*float32(m[2*c+1]))
		}
	}
}

// q5KChunkDequant decodes one 32-byte chunk of low bits q with the fifth
// bits at bit sh (first half) and sh+1 (second half) of qh: y[0:32] =
// d1*q-m1, y[32:64] = d2*q-m2.
func q5KChunkDequant(q, qh *[32]byte, sh uint, y *[64]float32, d1, m1, d2, m2 float32) {
	sh &= 7
	for l, b := range q {
		v, h := uint32(b), uint32(qh[l])>>sh
		y[l] = float32(d1*kqLevel[v&0xF|(h&1)<<4]) - m1
		y[l+32] = float32(d2*kqLevel[v>>4|(h&2)<<3]) - m2
	}
}

func quantizeQ5K(dst []byte, src []float32, imatrix []float32) {
	nb := len(src) / kqBlock
	var L [kqBlock]uint8
	for i := 0; i < nb; i++ {
		b := (*[q5KBlockBytes]byte)(dst[i*q5KBlockBytes:])
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i*kqBlock : (i+1)*kqBlock]
		}
		kqQuantizeScaleMin32(b[:16], &L, src[i*kqBlock:(i+1)*kqBlock], qw, 31, -0.5, 0.1, 15, true)
		qh := (*[32]byte)(b[16:])
		*qh = [32]byte{}
		for c := 0; c < 4; c++ {
			q := (*[32]byte)(b[48+32*c:])
			for l := range q {
				l1, l2 := L[64*c+l], L[64*c+32+l]
				if l1 > 15 {
					l1 -= 16
					qh[l] |= 1 << (2 * c)
				}
				if l2 > 15 {
					l2 -= 16
					qh[l] |= 2 << (2 * c)
				}
				q[l] = l1 | l2<<4
			}
		}
	}
}

// dotF32Q5K: each 32-weight sub-block contributes d_j*Σq*x - m_j*Σx.
func dotF32Q5K(w []byte, x []float32) float32 {
	nb := len(x) / kqBlock
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[q5KBlockBytes]byte)(w[i*q5KBlockBytes:])
		xb := (*[kqBlock]float32)(x[i*kqBlock:])
		d, dmin := kqHalf(b[:], 0), kqHalf(b[:], 2)
		sc, m := kqUnpackScalesK4(b[4:16])
		qh := (*[32]byte)(b[16:])
		var bsum float32
		for c := 0; c < 4; c++ {
			qxLo, qxHi, xLo, xHi := q5KChunkF32((*[32]byte)(b[48+32*c:]), qh, uint(2*c), (*[64]float32)(xb[64*c:]))
			bsum += float32(d*float32(sc[2*c]))*qxLo - float32(dmin*float32(m[2*c]))*xLo
			bsum += float32(d*float32(sc[2*c+1]))*qxHi - float32(dmin*float32(m[2*c+1]))*xHi
		}
		sum += bsum
	}
	return sum
}

// q5KChunkF32 is q4KChunkF32 for Q5_K: the fifth bits come from qh at bit
// sh (first half) and sh+1 (second half).
func q5KChunkF32(q, qh *[32]byte, sh uint, x *[64]float32) (qxLo, qxHi, xLo, xHi float32) {
	var qa, qb, qc, qd float32
	sh &= 7
	for l := 0; l < 32; l += 2 {
		v0, v1 := uint32(q[l]), uint32(q[l+1])
		h0, h1 := uint32(qh[l])>>sh, uint32(qh[l+1])>>sh
		lo, hi := (*[2]float32)(x[l:]), (*[2]float32)(x[32+l:])
		qa += float32(kqLevel[v0&0xF|(h0&1)<<4] * lo[0])
		qb += float32(kqLevel[v1&0xF|(h1&1)<<4] * lo[1])
		qc += float32(kqLevel[v0>>4|(h0&2)<<3] * hi[0])
		qd += float32(kqLevel[v1>>4|(h1&2)<<3] * hi[1])
		xLo += lo[0] + lo[1]
		xHi += hi[0] + hi[1]
	}
	return qa + qb, qc + qd, xLo, xHi
}
