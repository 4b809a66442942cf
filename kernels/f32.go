package kernels

import (
	"encoding/binary"
	"math"

	"github.com/inference-x/inference-x/gguf"
)

func init() {
	register(&Format{
		Type:       gguf.TypeF32,
		VecDot:     gguf.TypeF32,
		Dequantize: dequantizeF32,
		Quantize:   func(dst []byte, src []float32, _ []float32) { quantizeF32(dst, src) },
		// ggml_vec_dot_f32 (VecDotF32); MatMul takes tinyBLAS's order for
		// two or more tokens (dotF32WBatch).
		Dot: func(n int, w, a []byte) float32 {
			// Only tests call this (MatMul passes F32 activations to
			// DotF32): decode the activation row.
			x := make([]float32, n)
			for i := range x {
				x[i] = f32At(a, i)
			}
			return dotF32W(w, x)
		},
		DotF32: dotF32W,
	})
}

func f32At(b []byte, i int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])) }

func dequantizeF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = f32At(src, i)
	}
}

func quantizeF32(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}
