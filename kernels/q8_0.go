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
	for len(dst) >= legacyQK && len(src) >= q8_0Bytes {
		b, y := (*[q8_0Bytes]byte)(src), (*[legacyQK]float32)(dst)
		d := legacyF16(b[:], 0)
		for j := range y {
			y[j] = float32(int8(b[2+j])) * d
		}
		dst, src = dst[legacyQK:], src[q8_0Bytes:]
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

func dotF32Q8_0(w []byte, x []float32) float32 {
	var sum float64
	for len(x) >= legacyQK && len(w) >= q8_0Bytes {
		b, xb := (*[q8_0Bytes]byte)(w), (*[legacyQK]float32)(x)
		var s0, s1, s2, s3 float32
		for j := 0; j < legacyQK; j += 4 {
			s0 += float32(float32(int8(b[2+j])) * xb[j])
			s1 += float32(float32(int8(b[3+j])) * xb[j+1])
			s2 += float32(float32(int8(b[4+j])) * xb[j+2])
			s3 += float32(float32(int8(b[5+j])) * xb[j+3])
		}
		sum += float64(legacyF16(b[:], 0) * ((s0 + s1) + (s2 + s3)))
		w, x = w[q8_0Bytes:], x[legacyQK:]
	}
	return float32(sum)
}
