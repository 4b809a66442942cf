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
