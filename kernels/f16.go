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

func dequantizeF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
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

// dotF16 is ggml_vec_dot_f16's scalar order: each product in float32, the
// sum in float64 (ggml_float).
func dotF16(n int, w, a []byte) float32 {
	w, a = w[:2*n], a[:2*n]
	var s float64
	for i := 0; i < n; i++ {
		s += float64(f16At(w, i) * f16At(a, i))
	}
	return float32(s)
}

func dotF32F16(w []byte, x []float32) float32 {
	w = w[:2*len(x)]
	var s float64
	for i, v := range x {
		s += float64(f16At(w, i) * v)
	}
	return float32(s)
}
