package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// F16: IEEE half precision, one value per 2 bytes. Its activation type is
// F16 itself (ggml_vec_dot_f16).

func init() {
	register(&Format{
		Type:       gguf.TypeF16,
		VecDot:     gguf.TypeF16,
		Dequantize: dequantizeF16,
		// ggml_fp32_to_fp16_row; ggml-cpu's F16C conversion gives the same
		// bits for every non-NaN input.
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeF16(dst, src) },
		Dot:      dotF16,
		DotF32:   dotF32F16,
	})
}

func f16At(b []byte, i int) float32 { return FP16ToF32(binary.LittleEndian.Uint16(b[2*i:])) }

// f16Word is the little-endian 16-bit value at b[2*k:].
func f16Word(b *[16]byte, k int) uint16 { return uint16(b[2*k]) | uint16(b[2*k+1])<<8 }

// The loops below go 8 elements at a time through array pointers so that
// the compiler drops the bounds checks; a tail loop takes the rest.

func dequantizeF16(dst []float32, src []byte) {
	for len(dst) >= 8 && len(src) >= 16 {
		y, b := (*[8]float32)(dst), (*[16]byte)(src)
		for k := range y {
			y[k] = FP16ToF32(f16Word(b, k))
		}
		dst, src = dst[8:], src[16:]
	}
	for i := range dst {
		dst[i] = f16At(src, i)
	}
}

func quantizeF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToFP16(v))
	}
}

// dotF32F16 runs four float64 sums (ggml's SIMD paths reorder too).
func dotF32F16(w []byte, x []float32) float32 {
	w = w[:2*len(x)]
	var s0, s1, s2, s3 float64
	for len(x) >= 8 && len(w) >= 16 {
		xb, b := (*[8]float32)(x), (*[16]byte)(w)
		for k := 0; k < 8; k += 4 {
			s0 += float64(FP16ToF32(f16Word(b, k)) * xb[k])
			s1 += float64(FP16ToF32(f16Word(b, k+1)) * xb[k+1])
			s2 += float64(FP16ToF32(f16Word(b, k+2)) * xb[k+2])
			s3 += float64(FP16ToF32(f16Word(b, k+3)) * xb[k+3])
		}
		x, w = x[8:], w[16:]
	}
	for i, v := range x {
		s0 += float64(f16At(w, i) * v)
	}
	return float32((s0 + s1) + (s2 + s3))
}
