package kernels

import "github.com/inference-x/inference-x/gguf"

// Q4_1 (ggml-common.h block_q4_1): 32 weights as an fp16 scale d, an fp16
// offset m and 16 bytes of 4-bit codes q, weight = q·d + m. Byte j holds
// element j in its low nibble and element j+16 in its high nibble.
const q4_1Bytes = 20

func init() {
	register(&Format{
		Type:       gguf.TypeQ4_1,
		VecDot:     gguf.TypeQ8_1,
		Dequantize: dequantizeQ4_1,
		Quantize:   quantizeQ4_1,
		Dot:        dotQ4_1,
		DotF32:     dotF32Q4_1,
	})
}

func dequantizeQ4_1(dst []float32, src []byte) {
	for len(dst) >= legacyQK && len(src) >= q4_1Bytes {
		b, y := (*[q4_1Bytes]byte)(src), (*[legacyQK]float32)(dst)
		d, m := legacyF16(b[:], 0), legacyF16(b[:], 2)
		for j := 0; j < 16; j++ {
			q := b[4+j]
			y[j] = float32(float32(q&0x0f)*d) + m
			y[j+16] = float32(float32(q>>4)*d) + m
		}
		dst, src = dst[legacyQK:], src[q4_1Bytes:]
	}
}

func quantizeQ4_1(dst []byte, src []float32, imatrix []float32) {
	if imatrix != nil {
		quantizeQ4_1Imatrix(dst, src, imatrix)
		return
	}
	// quantize_row_q4_1_ref: d = (max-min)/15, m = min, codes
	// (int8)((x-min)/d + 0.5) capped at 15.
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q4_1Bytes:][:q4_1Bytes]
		minv, maxv := legacyMinMax(x)
		d := (maxv - minv) / 15
		var id float32
		if d != 0 {
			id = 1 / d
		}
		legacyPutF16(b, 0, d)
		legacyPutF16(b, 2, minv)
		for j := 0; j < 16; j++ {
			x0 := min(15, int32(int8(legacyTrunc(float32(float32(x[j]-minv)*id)+0.5))))
			x1 := min(15, int32(int8(legacyTrunc(float32(float32(x[j+16]-minv)*id)+0.5))))
			b[4+j] = uint8(x0) | uint8(x1)<<4
		}
	}
}

// legacyMinMax is the reference quantizers' min/max scan starting from
// ±FLT_MAX (NaNs are skipped).
func legacyMinMax(x []float32) (minv, maxv float32) {
	minv, maxv = maxFloat32, -maxFloat32
	for _, v := range x {
		if v < minv {
			minv = v
		}
		if v > maxv {
			maxv = v
		}
	}
	return minv, maxv
}

const maxFloat32 = 0x1p127 * (1 + (1 - 0x1p-23))

// quantizeQ4_1Imatrix is quantize_row_q4_1_impl: make_qkx3_quants per block
// with weights imatrix·sqrt(sigma2 + x²).
func quantizeQ4_1Imatrix(dst []byte, src, imatrix []float32) {
	sigma2 := legacySigma2(src)
	var w [legacyQK]float32
	var L [legacyQK]uint8
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q4_1Bytes:][:q4_1Bytes]
		legacyWeights(&w, x, imatrix[i:], sigma2)
		d, theMin := legacyMakeQKX3(15, x, &w, &L)
		legacyPutF16(b, 0, d)
		legacyPutF16(b, 2, -theMin)
		for j := 0; j < 16; j++ {
			b[4+j] = L[j] | L[j+16]<<4
		}
	}
}

// dotF32Q4_1 sums d·Σq·x + m·Σx per block.
func dotF32Q4_1(w []byte, x []float32) float32 {
	var sum float64
	for len(x) >= legacyQK && len(w) >= q4_1Bytes {
		b, xb := (*[q4_1Bytes]byte)(w), (*[legacyQK]float32)(x)
		var s0, s1, x0, x1 float32
		for j := 0; j < 16; j++ {
			q := b[4+j]
			s0 += float32(float32(q&0x0f) * xb[j])
			s1 += float32(float32(q>>4) * xb[j+16])
			x0 += xb[j]
			x1 += xb[j+16]
		}
		sum += float64(legacyF16(b[:], 0)*(s0+s1)) + float64(legacyF16(b[:], 2)*(x0+x1))
		w, x = w[q4_1Bytes:], x[legacyQK:]
	}
	return float32(sum)
}
