package kernels

import "github.com/inference-x/inference-x/gguf"

// Q4_K (ggml-common.h block_q4_K), 144 bytes per 256 weights:
//
//	d, dmin   fp16 super-block scales for the sub-block scales and mins
//	scales    12 bytes: eight 6-bit scales and eight 6-bit mins (kqScaleMinK4)
//	qs        128 bytes: 4-bit levels; byte l of 32-byte chunk c holds
//	          element 64c+l in its low nibble and 64c+32+l in its high one
//
// Weight = d*scale_j*q - dmin*min_j for the 32-element sub-block j.
const q4KBlockBytes = 144

func init() {
	register(&Format{
		Type:       gguf.TypeQ4_K,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeQ4K,
		Quantize:   quantizeQ4K,
		Dot:        dotQ4K,
		DotF32:     dotF32Q4K,
	})
}

func dequantizeQ4K(dst []float32, src []byte) {
	nb := len(dst) / kqBlock
	for i := 0; i < nb; i++ {
		b := (*[q4KBlockBytes]byte)(src[i*q4KBlockBytes:])
		y := (*[kqBlock]float32)(dst[i*kqBlock:])
		d, dmin := kqHalf(b[:], 0), kqHalf(b[:], 2)
		sc, m := kqUnpackScalesK4(b[4:16])
		for c := 0; c < 4; c++ {
			q4KChunkDequant((*[32]byte)(b[16+32*c:]), (*[64]float32)(y[64*c:]),
				d*float32(sc[2*c]), dmin*float32(m[2*c]), d*float32(sc[2*c+1]), dmin*float32(m[2*c+1]))
		}
	}
}

// q4KChunkDequant decodes one 32-byte chunk: low nibbles to y[0:32] as
// d1*q-m1, high nibbles to y[32:64] as d2*q-m2.
func q4KChunkDequant(q *[32]byte, y *[64]float32, d1, m1, d2, m2 float32) {
	for l, v := range q {
		y[l] = float32(d1*kqLevel[v&0xF]) - m1
		y[l+32] = float32(d2*kqLevel[v>>4]) - m2
	}
}

func quantizeQ4K(dst []byte, src []float32, imatrix []float32) {
	nb := len(src) / kqBlock
	var L [kqBlock]uint8
	for i := 0; i < nb; i++ {
		b := (*[q4KBlockBytes]byte)(dst[i*q4KBlockBytes:])
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i*kqBlock : (i+1)*kqBlock]
		}
		kqQuantizeScaleMin32(b[:16], &L, src[i*kqBlock:(i+1)*kqBlock], qw, 15, -1, 0.1, 20, false)
		for c := 0; c < 4; c++ {
			q := (*[32]byte)(b[16+32*c:])
			for l := range q {
				q[l] = L[64*c+l] | L[64*c+32+l]<<4
			}
		}
	}
}

// dotQ4K is ggml_vec_dot_q4_K_q8_K_generic's arithmetic: per block, integer
// sums in eight lanes (element e goes to lane e%8), then
// sums[lane] += d*lane_sum and sumf -= dmin*Σ bsums*mins; the lanes are
// added to sumf at the end.
func dotQ4K(n int, w, a []byte) float32 {
	nb := n / kqBlock
	var sums [8]float32
	var sumf float32
	for i := 0; i < nb; i++ {
		x := (*[q4KBlockBytes]byte)(w[i*q4KBlockBytes:])
		y := (*[kqQ8Bytes]byte)(a[i*kqQ8Bytes:])
		sc, m := kqUnpackScalesK4(x[4:16])
		var sumi int32
		for j := 0; j < 16; j++ {
			sumi += kqQ8Bsum(y[:], j) * int32(m[j/2])
		}
		// Integer sums lane by lane: lane p holds elements 8r+p. Integer
		// addition is exact, so only the per-lane grouping matters.
		qs := (*[128]byte)(x[16:])
		q8 := (*[kqBlock]byte)(y[kqQ8QsOff:])
		scales := [8]int32{int32(sc[0]), int32(sc[1]), int32(sc[2]), int32(sc[3]),
			int32(sc[4]), int32(sc[5]), int32(sc[6]), int32(sc[7])}
		var acc [8]int32
		for p := 0; p < 8; p++ {
			acc[p] = q4KLane((*[121]byte)(qs[p:]), (*[249]byte)(q8[p:]), &scales)
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

// q4KLane returns one lane's integer sum over a block: the elements
// 0, 8, 16, 24 of each 32-byte chunk of qs (low nibbles times the q8 values
// of the chunk's first 32 elements, high nibbles times the next 32), with
// the sub-block scales sc.
func q4KLane(qs *[121]byte, q8 *[249]byte, sc *[8]int32) int32 {
	q0, q1, q2, q3 := int32(qs[0]), int32(qs[8]), int32(qs[16]), int32(qs[24])
	l0 := int32(int8(q8[0]))*(q0&0xF) + int32(int8(q8[8]))*(q1&0xF) +
		int32(int8(q8[16]))*(q2&0xF) + int32(int8(q8[24]))*(q3&0xF)
	h0 := int32(int8(q8[32]))*(q0>>4) + int32(int8(q8[40]))*(q1>>4) +
		int32(int8(q8[48]))*(q2>>4) + int32(int8(q8[56]))*(q3>>4)
	q0, q1, q2, q3 = int32(qs[32]), int32(qs[40]), int32(qs[48]), int32(qs[56])
	l1 := int32(int8(q8[64]))*(q0&0xF) + int32(int8(q8[72]))*(q1&0xF) +
		int32(int8(q8[80]))*(q2&0xF) + int32(int8(q8[88]))*(q3&0xF)
	h1 := int32(int8(q8[96]))*(q0>>4) + int32(int8(q8[104]))*(q1>>4) +
		int32(int8(q8[112]))*(q2>>4) + int32(int8(q8[120]))*(q3>>4)
	q0, q1, q2, q3 = int32(qs[64]), int32(qs[72]), int32(qs[80]), int32(qs[88])
	l2 := int32(int8(q8[128]))*(q0&0xF) + int32(int8(q8[136]))*(q1&0xF) +
		int32(int8(q8[144]))*(q2&0xF) + int32(int8(q8[152]))*(q3&0xF)
	h2 := int32(int8(q8[160]))*(q0>>4) + int32(int8(q8[168]))*(q1>>4) +
		int32(int8(q8[176]))*(q2>>4) + int32(int8(q8[184]))*(q3>>4)
	q0, q1, q2, q3 = int32(qs[96]), int32(qs[104]), int32(qs[112]), int32(qs[120])
	l3 := int32(int8(q8[192]))*(q0&0xF) + int32(int8(q8[200]))*(q1&0xF) +
		int32(int8(q8[208]))*(q2&0xF) + int32(int8(q8[216]))*(q3&0xF)
	h3 := int32(int8(q8[224]))*(q0>>4) + int32(int8(q8[232]))*(q1>>4) +
		int32(int8(q8[240]))*(q2>>4) + int32(int8(q8[248]))*(q3>>4)
	return sc[0]*l0 + sc[1]*h0 + sc[2]*l1 + sc[3]*h1 + sc[4]*l2 + sc[5]*h2 + sc[6]*l3 + sc[7]*h3
}

// dotF32Q4K decodes each 32-weight sub-block in registers: the sub-block
// contributes d_j*Σq*x - m_j*Σx.
func dotF32Q4K(w []byte, x []float32) float32 {
	nb := len(x) / kqBlock
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[q4KBlockBytes]byte)(w[i*q4KBlockBytes:])
		xb := (*[kqBlock]float32)(x[i*kqBlock:])
		d, dmin := kqHalf(b[:], 0), kqHalf(b[:], 2)
		sc, m := kqUnpackScalesK4(b[4:16])
		var bsum float32
		for c := 0; c < 4; c++ {
			qxLo, qxHi, xLo, xHi := q4KChunkF32((*[32]byte)(b[16+32*c:]), (*[64]float32)(xb[64*c:]))
			bsum += float32(d*float32(sc[2*c]))*qxLo - float32(dmin*float32(m[2*c]))*xLo
			bsum += float32(d*float32(sc[2*c+1]))*qxHi - float32(dmin*float32(m[2*c+1]))*xHi
		}
		sum += bsum
	}
	return sum
}

// q4KChunkF32 returns Σ(low nibble)*x[0:32], Σ(high nibble)*x[32:64] and
// the two Σx for one 32-byte chunk; the products go to two partial sums
// each so that consecutive additions do not wait on one another.
func q4KChunkF32(q *[32]byte, x *[64]float32) (qxLo, qxHi, xLo, xHi float32) {
	var qa, qb, qc, qd float32
	for l := 0; l < 32; l += 2 {
		v0, v1 := q[l], q[l+1]
		lo, hi := (*[2]float32)(x[l:]), (*[2]float32)(x[32+l:])
		qa += float32(kqLevel[v0&0xF] * lo[0])
		qb += float32(kqLevel[v1&0xF] * lo[1])
		qc += float32(kqLevel[v0>>4] * hi[0])
		qd += float32(kqLevel[v1>>4] * hi[1])
		xLo += lo[0] + lo[1]
		xHi += hi[0] + hi[1]
	}
	return qa + qb, qc + qd, xLo, xHi
}
