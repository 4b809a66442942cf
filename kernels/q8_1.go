package kernels

import "github.com/inference-x/inference-x/gguf"

// Q8_1 (ggml-common.h block_q8_1): 32 values as an fp16 scale d, an fp16
// s = d·Σq and 32 int8 codes q. It is only an activation type (Q4_1, Q5_1
// dot against it and use s for their min term); ggml has no dequantizer and
// no dot product for it.
const q8_1Bytes = 36

func init() {
	register(&Format{
		Type:        gguf.TypeQ8_1,
		VecDot:      gguf.TypeQ8_1, // as ggml-cpu's type traits say; there is no Dot
		Quantize:    func(dst []byte, src []float32, _ []float32) { quantizeQ8_1Ref(dst, src) },
		QuantizeCPU: quantizeQ8_1AVX,
	})
}

// quantizeQ8_1Ref is quantize_row_q8_1_ref: the Q8_0 reference rule plus
// s = fp16(d·Σq) over the stored int8 codes.
func quantizeQ8_1Ref(dst []byte, src []float32) {
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q8_1Bytes:][:q8_1Bytes]
		d := legacyAmax(x) / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		legacyPutF16(b, 0, d)
		qs := b[4:36]
		var sum int32
		for j, v := range x {
			q := int8(legacyRoundAway(v * id))
			qs[j] = byte(q)
			sum += int32(q)
		}
		legacyPutF16(b, 2, float32(sum)*d)
	}
}

// quantizeQ8_1AVX is ggml-cpu's x86 quantize_row_q8_1 (AVX2): the Q8_0 AVX
// rule (127/amax, ties to even) with s = fp16(d·Σ) taken over the int32
// codes before they are saturated to int8.
func quantizeQ8_1AVX(dst []byte, src []float32) {
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q8_1Bytes:][:q8_1Bytes]
		amax := legacyMaxAbsAVX(x)
		d := amax / 127
		legacyPutF16(b, 0, d)
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		qs := b[4:36]
		var sum int32
		for j, v := range x {
			q := legacyRoundEven(v * id)
			qs[j] = legacySat8(q)
			sum += q
		}
		legacyPutF16(b, 2, d*float32(sum))
	}
}
