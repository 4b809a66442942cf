package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
)

// Q2_0 (ggml-common.h: block_q2_0): 64 weights per 18-byte block, an fp16
// scale d then 2 bits per weight, four to a byte from the low bits up
// (weight j in bits 2*(j%4) of byte j/4). Code q decodes to (q-1)*d, so the
// levels are -d, 0, d, 2d; d is the block's absolute maximum.

const (
	q2_0BlockSize  = 64
	q2_0BlockBytes = 18
)

func init() {
	register(&Format{
		Type:       gguf.TypeQ2_0,
		VecDot:     gguf.TypeQ8_0,
		Dequantize: dequantizeQ2_0,
		// ggml ignores the importance matrix for Q2_0 (quantize_q2_0).
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeQ2_0(dst, src) },
		Dot:      dotQ2_0,
		DotF32:   dotF32Q2_0,
	})
}

// q2Levels holds q-1 for the four 2-bit codes.
var q2Levels = [4]float32{-1, 0, 1, 2}

func dequantizeQ2_0(dst []float32, src []byte) {
	for i := 0; i+q2_0BlockSize <= len(dst); i += q2_0BlockSize {
		b := src[i/q2_0BlockSize*q2_0BlockBytes:][:q2_0BlockBytes]
		d := FP16ToF32(binary.LittleEndian.Uint16(b))
		y := dst[i : i+q2_0BlockSize]
		for j, q := range b[2:] {
			yy := y[j*4 : j*4+4]
			yy[0] = q2Levels[q&3] * d
			yy[1] = q2Levels[q>>2&3] * d
			yy[2] = q2Levels[q>>4&3] * d
			yy[3] = q2Levels[q>>6] * d
		}
	}
}

// quantizeQ2_0 is quantize_row_q2_0_ref: d = max|x|, code =
// clamp((int)roundf(x/d)+1, 0, 3) with x/d computed as x*(1/d).
func quantizeQ2_0(dst []byte, src []float32) {
	for i := 0; i+q2_0BlockSize <= len(src); i += q2_0BlockSize {
		x := src[i : i+q2_0BlockSize]
		b := dst[i/q2_0BlockSize*q2_0BlockBytes:][:q2_0BlockBytes]
		var amax float32
		for _, v := range x {
			if a := abs32(v); a > amax {
				amax = a
			}
		}
		var id float32
		if amax > 0 {
			id = 1 / amax
		}
		binary.LittleEndian.PutUint16(b, F32ToFP16(amax))
		qs := b[2:]
		for j := range qs {
			var packed uint8
			for k, v := range x[j*4 : j*4+4] {
				q := int64(roundAwayInt32(v*id)) + 1
				q = min(max(q, 0), 3)
				packed |= uint8(q) << (2 * k)
			}
			qs[j] = packed
		}
	}
}

// dotQ2_0 is ggml_vec_dot_q2_0_q8_0_generic (x86 has no SIMD code for
// Q2_0) as gcc compiles it for the AVX2/AVX-512 builds llama.cpp runs:
// each weight block spans two Q8_0 blocks; sumi = fma(d8, isum, sumi) per
// Q8_0 block, then sum = fma(d, sumi, sum) (both contracted to
// vfmadd231ss).
func dotQ2_0(n int, w, a []byte) float32 {
	var sum float32
	for i := 0; i < n/q2_0BlockSize; i++ {
		b := w[i*q2_0BlockBytes:][:q2_0BlockBytes]
		ab := a[i*2*q8_0BlockBytes:][:2*q8_0BlockBytes]
		var sumi float32
		for k := 0; k < 2; k++ {
			y := ab[k*q8_0BlockBytes:][:q8_0BlockBytes]
			qs := b[2+8*k:][:8]
			qy := y[2:][:32]
			var s int32
			for g, q := range qs {
				v := qy[g*4 : g*4+4]
				s += (int32(q&3) - 1) * int32(int8(v[0]))
				s += (int32(q>>2&3) - 1) * int32(int8(v[1]))
				s += (int32(q>>4&3) - 1) * int32(int8(v[2]))
				s += (int32(q>>6) - 1) * int32(int8(v[3]))
			}
			sumi = ggmlfp.FMA32(q8_0Scale(y), float32(s), sumi)
		}
		sum = ggmlfp.FMA32(FP16ToF32(binary.LittleEndian.Uint16(b)), sumi, sum)
	}
	return sum
}

func dotF32Q2_0(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+q2_0BlockSize <= len(x); i += q2_0BlockSize {
		b := w[i/q2_0BlockSize*q2_0BlockBytes:][:q2_0BlockBytes]
		xb := x[i : i+q2_0BlockSize]
		var s float32
		for j, q := range b[2:] {
			xx := xb[j*4 : j*4+4]
			s += float32(q2Levels[q&3] * xx[0])
			s += float32(q2Levels[q>>2&3] * xx[1])
			s += float32(q2Levels[q>>4&3] * xx[2])
			s += float32(q2Levels[q>>6] * xx[3])
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b)) * s)
	}
	return sum
}
