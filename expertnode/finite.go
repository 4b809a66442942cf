package expertnode

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// finiteActivation reports whether an activation row of type at holds no
// NaN or infinity. For the quantized types only the block scales (and
// Q8_1's scaled sums) are floats: the int8 quants cannot be non-finite,
// so the check reads 2 or 4 bytes per block and allocates nothing. The
// row's length has already been checked.
func finiteActivation(at gguf.Type, b []byte) bool {
	switch at {
	case gguf.TypeF32:
		for i := 0; i+4 <= len(b); i += 4 {
			if binary.LittleEndian.Uint32(b[i:])&0x7f800000 == 0x7f800000 {
				return false
			}
		}
	case gguf.TypeF16:
		for i := 0; i+2 <= len(b); i += 2 {
			if !finiteF16(b[i:]) {
				return false
			}
		}
	case gguf.TypeBF16:
		for i := 0; i+2 <= len(b); i += 2 {
			if binary.LittleEndian.Uint16(b[i:])&0x7f80 == 0x7f80 {
				return false
			}
		}
	case gguf.TypeQ8_0: // f16 d, 32 int8
		for i := 0; i+34 <= len(b); i += 34 {
			if !finiteF16(b[i:]) {
				return false
			}
		}
	case gguf.TypeQ8_1: // f16 d, f16 s, 32 int8
		for i := 0; i+36 <= len(b); i += 36 {
			if !finiteF16(b[i:]) || !finiteF16(b[i+2:]) {
				return false
			}
		}
	case gguf.TypeQ8_K: // f32 d, 256 int8, 16 int16 sums
		for i := 0; i+292 <= len(b); i += 292 {
			if binary.LittleEndian.Uint32(b[i:])&0x7f800000 == 0x7f800000 {
				return false
			}
		}
	}
	return true
}

// finiteF16 reports whether the little-endian half at b[0:2] is finite.
func finiteF16(b []byte) bool {
	return binary.LittleEndian.Uint16(b)&0x7c00 != 0x7c00
}
