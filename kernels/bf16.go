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

// bf16Word is the little-endian 16-bit value at b[2*k:].
func bf16Word(b *[16]byte, k int) uint16 { return uint16(b[2*k]) | uint16(b[2*k+1])<<8 }

// The loops below go 8 elements at a time through array pointers so that
// the compiler drops the bounds checks; a tail loop takes the rest.

func dequantizeBF16(dst []float32, src []byte) {
	for len(dst) >= 8 && len(src) >= 16 {
		y, b := (*[8]float32)(dst), (*[16]byte)(src)
		for k := range y {
			y[k] = BF16ToF32(bf16Word(b, k))
		}
		dst, src = dst[8:], src[16:]
	}
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

// dotF32BF16 runs four float64 sums (ggml's SIMD paths reorder too).
func dotF32BF16(w []byte, x []float32) float32 {
	w = w[:2*len(x)]
	var s0, s1, s2, s3 float64
	for len(x) >= 8 && len(w) >= 16 {
		xb, b := (*[8]float32)(x), (*[16]byte)(w)
		for k := 0; k < 8; k += 4 {
			s0 += float64(BF16ToF32(bf16Word(b, k)) * xb[k])
			s1 += float64(BF16ToF32(bf16Word(b, k+1)) * xb[k+1])
			s2 += float64(BF16ToF32(bf16Word(b, k+2)) * xb[k+2])
			s3 += float64(BF16ToF32(bf16Word(b, k+3)) * xb[k+3])
		}
		x, w = x[8:], w[16:]
	}
	for i, v := range x {
		s0 += float64(bf16At(w, i) * v)
	}
	return float32((s0 + s1) + (s2 + s3))
}
