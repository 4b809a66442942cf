package kernels

import (
	"math"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
)

// MXFP4 (ggml-common.h: block_mxfp4): 32 weights per 17-byte block, one E8M0
// exponent byte e then 16 bytes of E2M1 codes; byte j holds weight j in its
// low nibble and weight j+16 in its high nibble. A code decodes to
// kvaluesFP4[code] * 2^(e-128) (the table is doubled, the scale halved).

const (
	mxfp4BlockSize  = 32
	mxfp4BlockBytes = 17
)

func init() {
	register(&Format{
		Type:       gguf.TypeMXFP4,
		VecDot:     gguf.TypeQ8_0,
		Dequantize: dequantizeMXFP4,
		// ggml ignores the importance matrix for MXFP4 (quantize_mxfp4).
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeMXFP4(dst, src) },
		Dot:      dotMXFP4,
		DotF32:   dotF32MXFP4,
	})
}

func dequantizeMXFP4(dst []float32, src []byte) {
	for i := 0; i+mxfp4BlockSize <= len(dst); i += mxfp4BlockSize {
		b := src[i/mxfp4BlockSize*mxfp4BlockBytes:][:mxfp4BlockBytes]
		d := e8m0ToF32Half(b[0])
		y := dst[i : i+mxfp4BlockSize]
		lo, hi := y[:16], y[16:32]
		for j, q := range b[1:] {
			lo[j] = kvaluesFP4F32[q&0xf] * d
			hi[j] = kvaluesFP4F32[q>>4] * d
		}
	}
}

// quantizeMXFP4 is quantize_row_mxfp4_ref: e = floor(log2(amax)) - 2 + 127
// (so the largest value 6 = kvalue 12 times the half scale covers amax),
// then the nearest FP4 code per weight.
func quantizeMXFP4(dst []byte, src []float32) {
	for i := 0; i+mxfp4BlockSize <= len(src); i += mxfp4BlockSize {
		x := src[i : i+mxfp4BlockSize]
		b := dst[i/mxfp4BlockSize*mxfp4BlockBytes:][:mxfp4BlockBytes]
		var amax float32
		for _, v := range x {
			if amax < abs32(v) {
				amax = abs32(v)
			}
		}
		var e uint8
		if amax > 0 {
			// log2f rounds to float32 before the floor; C's (uint8_t) of the
			// float goes through a 32-bit integer conversion on x86.
			l := float32(math.Log2(float64(amax)))
			e = uint8(truncInt32(float32(float32(float32(math.Floor(float64(l)))-2) + 127)))
		}
		d := e8m0ToF32Half(e)
		b[0] = e
		for j := range 16 {
			b[1+j] = bestIndexFP4(x[j], d) | bestIndexFP4(x[16+j], d)<<4
		}
	}
}

// dotMXFP4 is ggml_vec_dot_mxfp4_q8_0 as llama.cpp runs it on x86 (the
// AVX2 code of arch/x86/quants.c): even and odd blocks in two 8-lane
// accumulators, acc = fma(y.d*e, lanes, acc) (lane t = weights 4t..4t+3
// times their codes), added lane by lane before hsum_float_8; an odd last
// block is added in scalar code, sumf = fma(d, sum, sumf) (gcc contracts
// the C's sumf += d*(sumi1+sumi2)).
func dotMXFP4(n int, w, a []byte) float32 {
	nb := n / mxfp4BlockSize
	var acc1, acc2 [8]float32
	var q [32]int8
	ib := 0
	for ; ib+1 < nb; ib += 2 {
		for k, acc := range [2]*[8]float32{&acc1, &acc2} {
			y := (*[q8_0BlockBytes]byte)(a[(ib+k)*q8_0BlockBytes:])
			d := decodeMXFP4(w[(ib+k)*mxfp4BlockBytes:][:mxfp4BlockBytes], &q)
			lanes := q0Lanes(&q, (*[32]byte)(y[2:]))
			fma8(acc, q8_0Scale(y[:])*d, &lanes)
		}
	}
	for t := range acc1 {
		acc1[t] += acc2[t]
	}
	sumf := ggmlfp.Reduce8(&acc1)
	for ; ib < nb; ib++ {
		y := (*[q8_0BlockBytes]byte)(a[ib*q8_0BlockBytes:])
		d := decodeMXFP4(w[ib*mxfp4BlockBytes:][:mxfp4BlockBytes], &q)
		lanes := q0Lanes(&q, (*[32]byte)(y[2:]))
		var s int32
		for _, v := range lanes {
			s += v
		}
		sumf = ggmlfp.FMA32(q8_0Scale(y[:])*d, float32(s), sumf)
	}
	return sumf
}

// decodeMXFP4 fills the block's 32 weights (doubled E2M1 values) in
// element order and returns its half scale.
func decodeMXFP4(b []byte, q *[32]int8) float32 {
	for j := 0; j < 16; j++ {
		q[j] = kvaluesFP4[b[1+j]&0x0f]
		q[j+16] = kvaluesFP4[b[1+j]>>4]
	}
	return e8m0ToF32Half(b[0])
}

func dotF32MXFP4(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+mxfp4BlockSize <= len(x); i += mxfp4BlockSize {
		b := w[i/mxfp4BlockSize*mxfp4BlockBytes:][:mxfp4BlockBytes]
		xb := x[i : i+mxfp4BlockSize]
		lo, hi := xb[:16], xb[16:32]
		var s float32
		for j, q := range b[1:] {
			s += float32(kvaluesFP4F32[q&0xf] * lo[j])
			s += float32(kvaluesFP4F32[q>>4] * hi[j])
		}
		sum += float32(e8m0ToF32Half(b[0]) * s)
	}
	return sum
}
