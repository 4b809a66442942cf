package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// Q5_1 (ggml-common.h block_q5_1): 32 weights as an fp16 scale d, an fp16
// offset m, 32 high bits qh and 16 bytes of low nibbles (the Q5_0 packing),
// weight = q·d + m.
const q5_1Bytes = 24

func init() {
	register(&Format{
		Type:       gguf.TypeQ5_1,
		VecDot:     gguf.TypeQ8_1,
		Dequantize: dequantizeQ5_1,
		Quantize:   quantizeQ5_1,
		Dot:        dotQ5_1,
		DotF32:     dotF32Q5_1,
	})
}

func dequantizeQ5_1(dst []float32, src []byte) {
	for len(dst) >= legacyQK && len(src) >= q5_1Bytes {
		b, y := (*[q5_1Bytes]byte)(src), (*[legacyQK]float32)(dst)
		d, m := legacyF16(b[:], 0), legacyF16(b[:], 2)
		qh := binary.LittleEndian.Uint32(b[4:8])
		for j := 0; j < 16; j++ {
			x0, x1 := legacyQ5Codes(b[8+j], qh)
			qh >>= 1
			y[j] = float32(float32(x0)*d) + m
			y[j+16] = float32(float32(x1)*d) + m
		}
		dst, src = dst[legacyQK:], src[q5_1Bytes:]
	}
}

func quantizeQ5_1(dst []byte, src []float32, imatrix []float32) {
	if imatrix != nil {
		quantizeQ5_1Imatrix(dst, src, imatrix)
		return
	}
	// quantize_row_q5_1_ref: d = (max-min)/31, m = min, codes
	// (uint8)((x-min)/d + 0.5), not capped.
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q5_1Bytes:][:q5_1Bytes]
		minv, maxv := legacyMinMax(x)
		d := (maxv - minv) / 31
		var id float32
		if d != 0 {
			id = 1 / d
		}
		legacyPutF16(b, 0, d)
		legacyPutF16(b, 2, minv)
		legacyPackQ5(b[4:], func(j int) uint8 {
			return uint8(legacyTrunc(float32(float32(x[j]-minv)*id) + 0.5))
		})
	}
}

// quantizeQ5_1Imatrix is quantize_row_q5_1_impl: make_qkx3_quants per block
// with weights imatrix·sqrt(sigma2 + x²).
func quantizeQ5_1Imatrix(dst []byte, src, imatrix []float32) {
	sigma2 := legacySigma2(src)
	var w [legacyQK]float32
	var L [legacyQK]uint8
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q5_1Bytes:][:q5_1Bytes]
		legacyWeights(&w, x, imatrix[i:], sigma2)
		d, theMin := legacyMakeQKX3(31, x, &w, &L)
		legacyPutF16(b, 0, d)
		legacyPutF16(b, 2, -theMin)
		legacyPackQ5(b[4:], func(j int) uint8 { return L[j] })
	}
}

// dotF32Q5_1 sums d·Σq·x + m·Σx per block.
func dotF32Q5_1(w []byte, x []float32) float32 {
	var sum float64
	for len(x) >= legacyQK && len(w) >= q5_1Bytes {
		b, xb := (*[q5_1Bytes]byte)(w), (*[legacyQK]float32)(x)
		qh := binary.LittleEndian.Uint32(b[4:8])
		var s0, s1, x0, x1 float32
		for j := 0; j < 16; j++ {
			c0, c1 := legacyQ5Codes(b[8+j], qh)
			qh >>= 1
			s0 += float32(float32(c0) * xb[j])
			s1 += float32(float32(c1) * xb[j+16])
			x0 += xb[j]
			x1 += xb[j+16]
		}
		sum += float64(legacyF16(b[:], 0)*(s0+s1)) + float64(legacyF16(b[:], 2)*(x0+x1))
		w, x = w[q5_1Bytes:], x[legacyQK:]
	}
	return float32(sum)
}
