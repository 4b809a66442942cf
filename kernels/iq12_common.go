package kernels

import (
	"encoding/binary"
	"math"
)

// Helpers shared by the IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S and IQ1_M kernels.

// iq12QK is ggml's QK_K, the 256-weight super-block of all five formats.
const iq12QK = 256

// iq12Q8K describes the companion activation block, ggml's block_q8_K
// (ggml-common.h): float32 d, int8 qs[256], int16 bsums[16].
const (
	iq12Q8KBytes = 292
	iq12Q8KQs    = 4   // offset of qs
	iq12Q8KBsums = 260 // offset of bsums
)

// iq12Q8KScale returns the float32 scale d of the q8_K block y.
func iq12Q8KScale(y []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(y)) }

// iq12FP16 reads the little-endian fp16 at b[0:2] as float32.
func iq12FP16(b []byte) float32 { return FP16ToF32(binary.LittleEndian.Uint16(b)) }

// iq2SignMul maps a sign bit to the factor ggml multiplies by: the IQ2
// dequantizers compute value*(sign ? -1 : 1), a multiply that keeps NaN
// payloads as the C code does (a Go negation would flip a NaN's sign).
var iq2SignMul = [2]float32{1, -1}

// iq2GroupDot is the integer dot of one group of 8 IQ2 grid magnitudes g
// (one byte each) with 8 q8 activations q, each product negated where the
// matching bit of signs is set.
func iq2GroupDot(g uint64, signs uint8, q []byte) int32 {
	q = q[:8]
	var s int32
	for j := range 8 {
		v := int32(uint8(g>>(8*j))) * int32(int8(q[j]))
		m := -int32(signs >> j & 1)
		s += (v ^ m) - m
	}
	return s
}

// iq2GroupDotF32 is the float dot of one group of 8 IQ2 grid magnitudes g
// with 8 activations x, with the signs of iq2GroupDot; the caller applies
// the scale.
func iq2GroupDotF32(g uint64, signs uint8, x []float32) float32 {
	x = x[:8]
	var s float32
	for j := range 8 {
		s += float32(float32(uint8(g>>(8*j))) * x[j] * iq2SignMul[signs>>j&1])
	}
	return s
}

// iq2DequantGroup writes the 8 values db*g[j]*(±1) of one IQ2 group.
func iq2DequantGroup(y []float32, db float32, g uint64, signs uint8) {
	y = y[:8]
	for j := range 8 {
		y[j] = db * float32(uint8(g>>(8*j))) * iq2SignMul[signs>>j&1]
	}
}

// iq12Ones returns n importance weights of 1, the stand-in for a missing
// importance matrix where ggml would refuse to quantize.
func iq12Ones(n int) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// iq12Sqrt is C's sqrtf (the float64 square root rounded to float32 is the
// correctly rounded float32 square root).
func iq12Sqrt(x float32) float32 { return float32(math.Sqrt(float64(x))) }
