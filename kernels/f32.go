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
		Dot: func(n int, w, a []byte) float32 {
			// ggml_vec_dot_f32's scalar order: a double accumulator.
			var s float64
			for i := 0; i < n; i++ {
				s += float64(f32At(w, i) * f32At(a, i))
			}
			return float32(s)
		},
		DotF32: func(w []byte, x []float32) float32 {
			var s float64
			for i, v := range x {
				s += float64(f32At(w, i) * v)
			}
			return float32(s)
		},
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
