package kernels

// Decoding helpers shared by IQ3_XXS and IQ3_S. A group pair is 8 weights:
// two 4-byte grid entries (magnitudes, one per byte, first weight in the
// low byte) and 8 sign bits (bit j set = weight j negative).

// iq3SignMasks[s] has byte j = 0xff where bit j of s is set.
var iq3SignMasks = func() (t [256]uint64) {
	for s := range t {
		for j := 0; j < 8; j++ {
			if s>>j&1 != 0 {
				t[s] |= 0xff << (8 * j)
			}
		}
	}
	return t
}()

// iq3Signed applies the signs to the 8 magnitude bytes of g, giving 8
// int8 lanes. Magnitudes are 1..62, so byte-wise two's complement
// negation, (g ^ 0xff) + 1, never carries into the next byte.
func iq3Signed(g uint64, signs uint8) uint64 {
	m := iq3SignMasks[signs]
	return (g ^ m) + (m & 0x0101010101010101)
}

// iq3GroupDot returns Σ_j w_j·q8_j over the 8 signed weights w (from
// iq3Signed) and 8 int8 activations.
func iq3GroupDot(w uint64, q8 []byte) int32 {
	q8 = q8[:8]
	return int32(int8(w))*int32(int8(q8[0])) +
		int32(int8(w>>8))*int32(int8(q8[1])) +
		int32(int8(w>>16))*int32(int8(q8[2])) +
		int32(int8(w>>24))*int32(int8(q8[3])) +
		int32(int8(w>>32))*int32(int8(q8[4])) +
		int32(int8(w>>40))*int32(int8(q8[5])) +
		int32(int8(w>>48))*int32(int8(q8[6])) +
		int32(int8(w>>56))*int32(int8(q8[7]))
}

// iq3GroupDotF32 is iq3GroupDot against float32 activations, summed in
// float32.
func iq3GroupDotF32(w uint64, x []float32) float32 {
	x = x[:8]
	s0 := float32(float32(int8(w))*x[0]) + float32(float32(int8(w>>8))*x[1])
	s1 := float32(float32(int8(w>>16))*x[2]) + float32(float32(int8(w>>24))*x[3])
	s2 := float32(float32(int8(w>>32))*x[4]) + float32(float32(int8(w>>40))*x[5])
	s3 := float32(float32(int8(w>>48))*x[6]) + float32(float32(int8(w>>56))*x[7])
	return (s0 + s1) + (s2 + s3)
}

// iq3DequantGroup writes the 8 weights db·w_j. ggml computes db·g and
// multiplies by ±1; rounding is symmetric, so db·(-g) is the same float.
func iq3DequantGroup(y []float32, db float32, w uint64) {
	y = y[:8]
	y[0] = db * float32(int8(w))
	y[1] = db * float32(int8(w>>8))
	y[2] = db * float32(int8(w>>16))
	y[3] = db * float32(int8(w>>24))
	y[4] = db * float32(int8(w>>32))
	y[5] = db * float32(int8(w>>40))
	y[6] = db * float32(int8(w>>48))
	y[7] = db * float32(int8(w>>56))
}
