package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// BF16: bfloat16 (the top half of a float32), one value per 2 bytes. Its
// activation type is BF16 itself (ggml_vec_dot_bf16).

func init() {
	register(&Format{
		Type:       gguf.TypeBF16,
		VecDot:     gguf.TypeBF16,
		Dequantize: dequantizeBF16,
		// ggml_fp32_to_bf16_row_ref, which ggml-cpu's from_float also is.
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeBF16(dst, src) },
		Dot:      dotBF16,
		DotF32:   dotF32BF16,
	})
}

func bf16At(b []byte, i int) float32 { return BF16ToF32(binary.LittleEndian.Uint16(b[2*i:])) }

func dequantizeBF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = bf16At(src, i)
	}
}

func quantizeBF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
	}
}

// dotBF16 is ggml_vec_dot_bf16's scalar order: each product in float32, the
// sum in float64 (ggml_float).
func dotBF16(n int, w, a []byte) float32 {
	w, a = w[:2*n], a[:2*n]
	var s float64
	for i := 0; i < n; i++ {
		s += float64(bf16At(w, i) * bf16At(a, i))
	}
	return float32(s)
}

func dotF32BF16(w []byte, x []float32) float32 {
	w = w[:2*len(x)]
	var s float64
	for i, v := range x {
		s += float64(bf16At(w, i) * v)
	}
	return float32(s)
}
