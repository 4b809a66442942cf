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
// block from its low-nibble byte q and its high bits qh shifted right by j
// (callers shift qh once per step rather than by a variable amount).
func legacyQ5Codes(q byte, qh uint32) (int32, int32) {
	return int32(q&0x0f) | int32(qh<<4&0x10), int32(q>>4) | int32(qh>>12&0x10)
}

func dequantizeQ5_0(dst []float32, src []byte) {
	for len(dst) >= legacyQK && len(src) >= q5_0Bytes {
		b, y := (*[q5_0Bytes]byte)(src), (*[legacyQK]float32)(dst)
		d := legacyF16(b[:], 0)
		qh := binary.LittleEndian.Uint32(b[2:6])
		for j := 0; j < 16; j++ {
			x0, x1 := legacyQ5Codes(b[6+j], qh)
			qh >>= 1
			y[j] = float32(x0-16) * d
			y[j+16] = float32(x1-16) * d
		}
		dst, src = dst[legacyQK:], src[q5_0Bytes:]
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

func dotF32Q5_0(w []byte, x []float32) float32 {
	var sum float64
	for len(x) >= legacyQK && len(w) >= q5_0Bytes {
		b, xb := (*[q5_0Bytes]byte)(w), (*[legacyQK]float32)(x)
		qh := binary.LittleEndian.Uint32(b[2:6])
		var s0, s1 float32
		for j := 0; j < 16; j++ {
			x0, x1 := legacyQ5Codes(b[6+j], qh)
			qh >>= 1
			s0 += float32(float32(x0-16) * xb[j])
			s1 += float32(float32(x1-16) * xb[j+16])
		}
		sum += float64(legacyF16(b[:], 0) * (s0 + s1))
		w, x = w[q5_0Bytes:], x[legacyQK:]
	}
	return float32(sum)
}
