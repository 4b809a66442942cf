package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// Q5_0 (ggml-common.h block_q5_0): 32 weights as an fp16 scale d, 32 high
// bits qh (little-endian u32, bit j for element j) and 16 bytes of low
// nibbles (byte j: element j low, element j+16 high), weight = (q-16)·d.
const q5_0Bytes = 22

func init() {
	register(&Format{
		Type:       gguf.TypeQ5_0,
		VecDot:     gguf.TypeQ8_0,
		Dequantize: dequantizeQ5_0,
		Quantize:   quantizeQ5_0,
		Dot:        dotQ5_0,
		DotF32:     dotF32Q5_0,
	})
}

// legacyQ5Codes returns the 5-bit codes of elements j and j+16 of a Q5
// block from its low-nibble byte q and high bits qh.
func legacyQ5Codes(q byte, qh uint32, j int) (int32, int32) {
	return int32(q&0x0f) | int32(qh>>j<<4&0x10), int32(q>>4) | int32(qh>>(j+12)&0x10)
}

func dequantizeQ5_0(dst []float32, src []byte) {
	for i := 0; i+legacyQK <= len(dst); i += legacyQK {
		b := src[i/legacyQK*q5_0Bytes:][:q5_0Bytes]
		y := dst[i : i+legacyQK]
		d := legacyF16(b, 0)
		qh := binary.LittleEndian.Uint32(b[2:])
		for j, q := range b[6:22] {
			x0, x1 := legacyQ5Codes(q, qh, j)
			y[j] = float32(x0-16) * d
			y[j+16] = float32(x1-16) * d
		}
	}
}

// legacyPackQ5 stores 32 five-bit codes as qh (at b[0:4]) and low nibbles
// (at b[4:20]).
func legacyPackQ5(b []byte, code func(j int) uint8) {
	b = b[:20]
	var qh uint32
	for j := 0; j < 16; j++ {
		x0, x1 := code(j), code(j+16)
		b[4+j] = x0&0x0f | (x1&0x0f)<<4
		qh |= uint32(x0&0x10)>>4<<j | uint32(x1&0x10)>>4<<(j+16)
	}
	binary.LittleEndian.PutUint32(b, qh)
}

func quantizeQ5_0(dst []byte, src []float32, imatrix []float32) {
	if imatrix != nil {
		quantizeQ5_0Imatrix(dst, src, imatrix)
		return
	}
	// quantize_row_q5_0_ref: d = max/-16 with max the signed element of
	// largest magnitude, codes (int8)(x/d + 16.5) capped at 31.
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q5_0Bytes:][:q5_0Bytes]
		var amax, maxv float32
		for _, v := range x {
			if a := abs32(v); amax < a {
				amax, maxv = a, v
			}
		}
		d := maxv / -16
		var id float32
		if d != 0 {
			id = 1 / d
		}
		legacyPutF16(b, 0, d)
		legacyPackQ5(b[2:], func(j int) uint8 {
			return uint8(min(31, int32(int8(legacyTrunc(float32(x[j]*id)+16.5)))))
		})
	}
}

// quantizeQ5_0Imatrix is quantize_row_q5_0_impl: make_qx_quants per block
// with weights imatrix·sqrt(sigma2 + x²).
func quantizeQ5_0Imatrix(dst []byte, src, imatrix []float32) {
	sigma2 := legacySigma2(src)
	var w [legacyQK]float32
	var L [legacyQK]int8
	for i := 0; i+legacyQK <= len(src); i += legacyQK {
		x := src[i : i+legacyQK]
		b := dst[i/legacyQK*q5_0Bytes:][:q5_0Bytes]
		legacyWeights(&w, x, imatrix[i:], sigma2)
		legacyPutF16(b, 0, legacyMakeQX(16, x, &w, &L))
		legacyPackQ5(b[2:], func(j int) uint8 { return uint8(L[j]) })
	}
}

// dotQ5_0 is ggml_vec_dot_q5_0_q8_0 in the scalar order: an int sum per
// block, then sumf += (dx·dy)·sumi.
func dotQ5_0(n int, w, a []byte) float32 {
	var sumf float32
	for i := 0; i+legacyQK <= n; i += legacyQK {
		bw := w[i/legacyQK*q5_0Bytes:][:q5_0Bytes]
		ba := a[i/legacyQK*q8_0Bytes:][:q8_0Bytes]
		qh := binary.LittleEndian.Uint32(bw[2:])
		qw, qa := bw[6:22], ba[2:34]
		var s0, s1 int32
		for j, q := range qw {
			x0, x1 := legacyQ5Codes(q, qh, j)
			s0 += (x0 - 16) * int32(int8(qa[j]))
			s1 += (x1 - 16) * int32(int8(qa[j+16]))
		}
		sumf += float32(float32(legacyF16(bw, 0)*legacyF16(ba, 0)) * float32(s0+s1))
	}
	return sumf
}

func dotF32Q5_0(w []byte, x []float32) float32 {
	var sum float64
	for i := 0; i+legacyQK <= len(x); i += legacyQK {
		b := w[i/legacyQK*q5_0Bytes:][:q5_0Bytes]
		xb := x[i : i+legacyQK]
		qh := binary.LittleEndian.Uint32(b[2:])
		var s0, s1 float32
		for j, q := range b[6:22] {
			x0, x1 := legacyQ5Codes(q, qh, j)
			s0 += float32(float32(x0-16) * xb[j])
			s1 += float32(float32(x1-16) * xb[j+16])
		}
		sum += float64(legacyF16(b, 0) * (s0 + s1))
	}
	return float32(sum)
}
