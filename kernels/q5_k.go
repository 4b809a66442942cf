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

// dotQ5K is ggml_vec_dot_q5_K_q8_K_generic's arithmetic (see dotQ4K).
func dotQ5K(n int, w, a []byte) float32 {
	nb := n / kqBlock
	var sums [8]float32
	var sumf float32
	for i := 0; i < nb; i++ {
		x := (*[q5KBlockBytes]byte)(w[i*q5KBlockBytes:])
		y := (*[kqQ8Bytes]byte)(a[i*kqQ8Bytes:])
		sc, m := kqUnpackScalesK4(x[4:16])
		var sumi int32
		for j := 0; j < 16; j++ {
			sumi += kqQ8Bsum(y[:], j) * int32(m[j/2])
		}
		// Integer sums lane by lane (lane p: elements 8r+p), see dotQ4K.
		var scales [8]int32
		for j, v := range sc {
			scales[j] = int32(v)
		}
		var acc [8]int32
		for p := 0; p < 8; p++ {
			acc[p] = q5KLane((*[121]byte)(x[48+p:]), (*[25]byte)(x[16+p:]), (*[249]byte)(y[kqQ8QsOff+p:]), &scales)
		}
		yd := kqQ8Scale(y[:])
		d := kqHalf(x[:], 0) * yd
		for l := range sums {
			sums[l] += float32(d * float32(acc[l]))
		}
		dmin := kqHalf(x[:], 2) * yd
		sumf -= float32(dmin * float32(sumi))
	}
	for _, s := range sums {
		sumf += s
	}
	return sumf
}

// q5KLane returns one lane's integer sum over a block: the elements 0, 8,
// 16, 24 of each 32-byte chunk of qs with their fifth bits from qh, times
// the matching q8 values, with the sub-block scales sc.
func q5KLane(qs *[121]byte, qh *[25]byte, q8 *[249]byte, sc *[8]int32) int32 {
	h0, h1, h2, h3 := int32(qh[0]), int32(qh[8]), int32(qh[16]), int32(qh[24])
	q0, q1, q2, q3 := int32(qs[0]), int32(qs[8]), int32(qs[16]), int32(qs[24])
	l0 := int32(int8(q8[0]))*(q0&0xF|(h0&1)<<4) + int32(int8(q8[8]))*(q1&0xF|(h1&1)<<4) +
		int32(int8(q8[16]))*(q2&0xF|(h2&1)<<4) + int32(int8(q8[24]))*(q3&0xF|(h3&1)<<4)
	u0 := int32(int8(q8[32]))*(q0>>4|(h0>>1&1)<<4) + int32(int8(q8[40]))*(q1>>4|(h1>>1&1)<<4) +
		int32(int8(q8[48]))*(q2>>4|(h2>>1&1)<<4) + int32(int8(q8[56]))*(q3>>4|(h3>>1&1)<<4)
	q0, q1, q2, q3 = int32(qs[32]), int32(qs[40]), int32(qs[48]), int32(qs[56])
	l1 := int32(int8(q8[64]))*(q0&0xF|(h0>>2&1)<<4) + int32(int8(q8[72]))*(q1&0xF|(h1>>2&1)<<4) +
		int32(int8(q8[80]))*(q2&0xF|(h2>>2&1)<<4) + int32(int8(q8[88]))*(q3&0xF|(h3>>2&1)<<4)
	u1 := int32(int8(q8[96]))*(q0>>4|(h0>>3&1)<<4) + int32(int8(q8[104]))*(q1>>4|(h1>>3&1)<<4) +
		int32(int8(q8[112]))*(q2>>4|(h2>>3&1)<<4) + int32(int8(q8[120]))*(q3>>4|(h3>>3&1)<<4)
	q0, q1, q2, q3 = int32(qs[64]), int32(qs[72]), int32(qs[80]), int32(qs[88])
	l2 := int32(int8(q8[128]))*(q0&0xF|(h0>>4&1)<<4) + int32(int8(q8[136]))*(q1&0xF|(h1>>4&1)<<4) +
		int32(int8(q8[144]))*(q2&0xF|(h2>>4&1)<<4) + int32(int8(q8[152]))*(q3&0xF|(h3>>4&1)<<4)
	u2 := int32(int8(q8[160]))*(q0>>4|(h0>>5&1)<<4) + int32(int8(q8[168]))*(q1>>4|(h1>>5&1)<<4) +
		int32(int8(q8[176]))*(q2>>4|(h2>>5&1)<<4) + int32(int8(q8[184]))*(q3>>4|(h3>>5&1)<<4)
	q0, q1, q2, q3 = int32(qs[96]), int32(qs[104]), int32(qs[112]), int32(qs[120])
	l3 := int32(int8(q8[192]))*(q0&0xF|(h0>>6&1)<<4) + int32(int8(q8[200]))*(q1&0xF|(h1>>6&1)<<4) +
		int32(int8(q8[208]))*(q2&0xF|(h2>>6&1)<<4) + int32(int8(q8[216]))*(q3&0xF|(h3>>6&1)<<4)
	u3 := int32(int8(q8[224]))*(q0>>4|(h0>>7&1)<<4) + int32(int8(q8[232]))*(q1>>4|(h1>>7&1)<<4) +
		int32(int8(q8[240]))*(q2>>4|(h2>>7&1)<<4) + int32(int8(q8[248]))*(q3>>4|(h3>>7&1)<<4)
	return sc[0]*l0 + sc[1]*u0 + sc[2]*l1 + sc[3]*u1 + sc[4]*l2 + sc[5]*u2 + sc[6]*l3 + sc[7]*u3
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
