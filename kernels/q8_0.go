package kernels

import "github.com/inference-x/inference-x/gguf"

// Q8_0 (ggml-common.h block_q8_0): 32 values as an fp16 scale d and 32
// int8 codes q, value = q·d. It is both a weight format and the activation
// type of Q4_0, Q5_0, Q8_0 and the other 32-block formats.
const q8_0Bytes = 34

func init() {
	register(&Format{
		Type:       gguf.TypeQ8_0,
		VecDot:     gguf.TypeQ8_0,
		Dequantize: dequantizeQ8_0,
		// ggml ignores the importance matrix for Q8_0 (quantize_q8_0).
		Quantize:    func(dst []byte, src []float32, _ []float32) { quantizeQ8_0Ref(dst, src) },
		QuantizeCPU: quantizeQ8_0AVX,
		Dot:         dotQ8_0,
		DotF32:      dotF32Q8_0,
	})
}

func dequantizeQ8_0(dst []float32, src []byte) {
	for i := 0; i+legacyQK <= len(dst); i += legacyQK {
		b := src[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		y := dst[i : i+legacyQK]
		d := legacyF16(b, 0)
		for j, q := range b[2:34] {
			y[j] = float32(int8(q)) * d
		}
	}
}

// quantizeQ8_0Ref is quantize_row_q8_0_ref: d = amax/127, codes
// roundf(x·(1/d)) (ties away from zero). ggml_quantize_chunk and the
// portable CPU backends use it.
func quantizeQ8_0Ref(dst []byte, src []float32) {
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		d := legacyAmax(x) / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		legacyPutF16(b, 0, d)
		qs := b[2:34]
		for j, v := range x {
			qs[j] = byte(legacyRoundAway(v * id))
		}
	}
}

// quantizeQ8_0AVX is ggml-cpu's x86 quantize_row_q8_0 (AVX/AVX2), the
// activation quantizer ggml runs on x86: d = amax/127 as in the reference,
// but codes round(x·(127/amax)) with ties to even, saturated to int8.
func quantizeQ8_0AVX(dst []byte, src []float32) {
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		amax := legacyMaxAbsAVX(x)
		legacyPutF16(b, 0, amax/127)
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		qs := b[2:34]
		for j, v := range x {
			qs[j] = legacySat8(legacyRoundEven(v * id))
		}
	}
}

// legacyAmax is the reference quantizers' amax = MAX(amax, fabsf(v)) loop.
// MAX keeps its second operand when the comparison fails, so after a NaN the
// scan restarts from the next element and a NaN survives only as the last.
func legacyAmax(x []float32) float32 {
	var amax float32
	for _, v := range x {
		if a := abs32(v); !(amax > a) {
			amax = a
		}
	}
	return amax
}

// dotQ8_0 is ggml_vec_dot_q8_0_q8_0 in the scalar order: an int sum per
// block, then sumf += sumi·(dx·dy).
func dotQ8_0(n int, w, a []byte) float32 {
	var sumf float32
	for i := 0; i+legacyQK <= n; i += legacyQK {
		bw := w[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		ba := a[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		qw, qa := bw[2:34], ba[2:34]
		var s int32
		for j, q := range qw {
			s += int32(int8(q)) * int32(int8(qa[j]))
		}
		sumf += float32(float32(s) * float32(legacyF16(bw, 0)*legacyF16(ba, 0)))
	}
	return sumf
}

func dotF32Q8_0(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i+legacyQK <= len(x); i += legacyQK {
		b := w[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		xb := x[i : i+legacyQK]
		qs := b[2:34]
		var s0, s1 float32
		for j := 0; j < 16; j++ {
			s0 += float32(float32(int8(qs[j])) * xb[j])
			s1 += float32(float32(int8(qs[j+16])) * xb[j+16])
		}
		sum += float64(legacyF16(b, 0) * (s0 + s1))
	}
	return float32(sum)
}
