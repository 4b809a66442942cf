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

// iq2SignMask maps a byte of 8 sign bits to a mask with byte j all ones
// where bit j is set.
var iq2SignMask = func() (t [256]uint64) {
	for i := range t {
		for j := range 8 {
			if i>>j&1 != 0 {
				t[i] |= 0xff << (8 * j)
			}
		}
	}
	return t
}()

// iq2GroupDot is the integer dot of one group of 8 IQ2 grid magnitudes g
// (one byte each) with 8 q8 activations q, each product negated where the
// matching bit of signs is set. A negated lane uses -q = ^q + 1, so it
// multiplies ^q and the grid bytes of the negated lanes are added once.
func iq2GroupDot(g uint64, signs uint8, q []byte) int32 {
	m := iq2SignMask[signs]
	x := binary.LittleEndian.Uint64(q) ^ m
	s := int32(uint8(g))*int32(int8(x)) + int32(uint8(g>>8))*int32(int8(x>>8)) +
		int32(uint8(g>>16))*int32(int8(x>>16)) + int32(uint8(g>>24))*int32(int8(x>>24)) +
		int32(uint8(g>>32))*int32(int8(x>>32)) + int32(uint8(g>>40))*int32(int8(x>>40)) +
		int32(uint8(g>>48))*int32(int8(x>>48)) + int32(uint8(g>>56))*int32(int8(x>>56))
	return s + iq12ByteSum(g&m)
}

// iq12ByteSum returns the sum of the 8 bytes of v.
func iq12ByteSum(v uint64) int32 {
	v = v&0x00ff00ff00ff00ff + v>>8&0x00ff00ff00ff00ff
	return int32(v * 0x0001000100010001 >> 48)
}

// iq2Signed returns grid byte j of g negated where bit j of signs is set.
func iq2Signed(g uint64, signs uint8, j int) float32 {
	v := int32(uint8(g >> (8 * j)))
	m := -int32(signs >> j & 1)
	return float32(v ^ m - m)
}

// iq2GroupDotF32 is the float dot of one group of 8 IQ2 grid magnitudes g
// with 8 activations x, with the signs of iq2GroupDot; the caller applies
// the scale.
func iq2GroupDotF32(g uint64, signs uint8, x []float32) float32 {
	x = x[:8]
	return (iq2Signed(g, signs, 0)*x[0] + iq2Signed(g, signs, 1)*x[1]) +
		(iq2Signed(g, signs, 2)*x[2] + iq2Signed(g, signs, 3)*x[3]) +
		(iq2Signed(g, signs, 4)*x[4] + iq2Signed(g, signs, 5)*x[5]) +
		(iq2Signed(g, signs, 6)*x[6] + iq2Signed(g, signs, 7)*x[7])
}

// iq2DequantGroup writes the 8 values of one IQ2 group. ggml computes
// db*g*(sign ? -1 : 1); db*(±g) is the same float bit for bit (IEEE
// multiplication is symmetric in sign, and no grid byte is 0).
func iq2DequantGroup(y []float32, db float32, g uint64, signs uint8) {
	y = y[:8]
	y[0] = db * iq2Signed(g, signs, 0)
	y[1] = db * iq2Signed(g, signs, 1)
	y[2] = db * iq2Signed(g, signs, 2)
	y[3] = db * iq2Signed(g, signs, 3)
	y[4] = db * iq2Signed(g, signs, 4)
	y[5] = db * iq2Signed(g, signs, 5)
	y[6] = db * iq2Signed(g, signs, 6)
	y[7] = db * iq2Signed(g, signs, 7)
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
