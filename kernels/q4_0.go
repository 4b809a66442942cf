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
	for i := 0; i+legacyQK <= len(dst); i += legacyQK {
		b := src[i/legacyQK*q4_0Bytes:][:q4_0Bytes]
		y := dst[i : i+legacyQK]
		d := legacyF16(b, 0)
		qs := b[2:18]
		for j, q := range qs {
			y[j] = float32(int32(q&0x0f)-8) * d
			y[j+16] = float32(int32(q>>4)-8) * d
		}
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

// dotQ4_0 is ggml_vec_dot_q4_0_q8_0 in the scalar order: an int sum per
// block, then sumf += (sumi·dx)·dy.
func dotQ4_0(n int, w, a []byte) float32 {
	var sumf float32
	for i := 0; i+legacyQK <= n; i += legacyQK {
		bw := w[i/legacyQK*q4_0Bytes:][:q4_0Bytes]
		ba := a[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		qw, qa := bw[2:18], ba[2:34]
		var s0, s1 int32
		for j, q := range qw {
			s0 += (int32(q&0x0f) - 8) * int32(int8(qa[j]))
			s1 += (int32(q>>4) - 8) * int32(int8(qa[j+16]))
		}
		sumf += float32(float32(float32(s0+s1)*legacyF16(bw, 0)) * legacyF16(ba, 0))
	}
	return sumf
}

func dotF32Q4_0(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i+legacyQK <= len(x); i += legacyQK {
		b := w[i/legacyQK*q4_0Bytes:][:q4_0Bytes]
		xb := x[i : i+legacyQK]
		qs := b[2:18]
		var s0, s1 float32
		for j, q := range qs {
			s0 += float32(float32(int32(q&0x0f)-8) * xb[j])
			s1 += float32(float32(int32(q>>4)-8) * xb[j+16])
		}
		sum += float64(legacyF16(b, 0) * (s0 + s1))
	}
	return float32(sum)
}
