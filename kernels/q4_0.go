package kernels

import "github.com/inference-x/inference-x/gguf"

// Q4_0 (ggml-common.h block_q4_0): 32 weights as an fp16 scale d and 16
// bytes of 4-bit codes q, weight = (q-8)·d. Byte j holds element j in its
// low nibble and element j+16 in its high nibble.
const q4_0Bytes = 18

func init() {
	register(&Format{
		Type:       gguf.TypeQ4_0,
		VecDot:     gguf.TypeQ8_0,
		Dequantize: dequantizeQ4_0,
		Quantize:   quantizeQ4_0,
		Dot:        dotQ4_0,
		DotF32:     dotF32Q4_0,
	})
}

func dequantizeQ4_0(dst []float32, src []byte) {
	for len(dst) >= legacyQK && len(src) >= q4_0Bytes {
		b, y := (*[q4_0Bytes]byte)(src), (*[legacyQK]float32)(dst)
		d := legacyF16(b[:], 0)
		for j := 0; j < 16; j++ {
			q := b[2+j]
			y[j] = float32(int32(q&0x0f)-8) * d
			y[j+16] = float32(int32(q>>4)-8) * d
		}
		dst, src = dst[legacyQK:], src[q4_0Bytes:]
	}
}

func quantizeQ4_0(dst []byte, src []float32, imatrix []float32) {
	if imatrix != nil {
		quantizeQ4_0Imatrix(dst, src, imatrix)
		return
	}
	// quantize_row_q4_0_ref: d = max/-8 where max is the signed element of
	// largest magnitude, codes (int8)(x/d + 8.5) capped at 15.
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q4_0Bytes:][:q4_0Bytes]
		var amax, maxv float32
		for _, v := range x {
			if a := abs32(v); amax < a {
				amax, maxv = a, v
			}
		}
		d := maxv / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		legacyPutF16(b, 0, d)
		for j := 0; j < 16; j++ {
			x0 := min(15, int32(int8(legacyTrunc(float32(x[j]*id)+8.5))))
			x1 := min(15, int32(int8(legacyTrunc(float32(x[j+16]*id)+8.5))))
			b[2+j] = uint8(x0) | uint8(x1)<<4
		}
	}
}

// quantizeQ4_0Imatrix is quantize_row_q4_0_impl: make_qx_quants per block
// with weights imatrix·sqrt(sigma2 + x²).
func quantizeQ4_0Imatrix(dst []byte, src, imatrix []float32) {
	sigma2 := legacySigma2(src)
	var w [legacyQK]float32
	var L [legacyQK]int8
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q4_0Bytes:][:q4_0Bytes]
		legacyWeights(&w, x, imatrix[i:], sigma2)
		d := legacyMakeQX(8, x, &w, &L)
		legacyPutF16(b, 0, d)
		for j := 0; j < 16; j++ {
			b[2+j] = uint8(L[j]) | uint8(L[j+16])<<4
		}
	}
}

func dotF32Q4_0(w []byte, x []float32) float32 {
	var sum float64
	for len(x) >= legacyQK && len(w) >= q4_0Bytes {
		b, xb := (*[q4_0Bytes]byte)(w), (*[legacyQK]float32)(x)
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			q0, q1 := b[2+j], b[3+j]
			s0 += float32(float32(int32(q0&0x0f)-8) * xb[j])
			s1 += float32(float32(int32(q0>>4)-8) * xb[j+16])
			s2 += float32(float32(int32(q1&0x0f)-8) * xb[j+1])
			s3 += float32(float32(int32(q1>>4)-8) * xb[j+17])
		}
		sum += float64(legacyF16(b[:], 0) * ((s0 + s1) + (s2 + s3)))
		w, x = w[q4_0Bytes:], x[legacyQK:]
	}
	return float32(sum)
}
