package rpc

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/inference-x/inference-x/gguf"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// activationTypes maps the wire's activation types to ggml types (the
// companion types of kernels.QuantizeActivation).
var activationTypes = [...]struct {
	wire ixv1.ActivationType
	ggml gguf.Type
}{
	{ixv1.ActivationType_ACTIVATION_TYPE_F32, gguf.TypeF32},
	{ixv1.ActivationType_ACTIVATION_TYPE_F16, gguf.TypeF16},
	{ixv1.ActivationType_ACTIVATION_TYPE_BF16, gguf.TypeBF16},
	{ixv1.ActivationType_ACTIVATION_TYPE_Q8_0, gguf.TypeQ8_0},
	{ixv1.ActivationType_ACTIVATION_TYPE_Q8_1, gguf.TypeQ8_1},
	{ixv1.ActivationType_ACTIVATION_TYPE_Q8_K, gguf.TypeQ8_K},
}

// WireType returns the wire name of a ggml activation type (UNSPECIFIED
// for a type that is not one).
func WireType(t gguf.Type) ixv1.ActivationType {
	for _, a := range activationTypes {
		if a.ggml == t {
			return a.wire
		}
	}
	return ixv1.ActivationType_ACTIVATION_TYPE_UNSPECIFIED
}

// GGMLType returns the ggml type of a wire activation type; ok is false
// for UNSPECIFIED and unknown values.
func GGMLType(t ixv1.ActivationType) (gguf.Type, bool) {
	for _, a := range activationTypes {
		if a.wire == t {
			return a.ggml, true
		}
	}
	return 0, false
}

// littleEndian is true on hosts whose float32 memory layout is the wire's,
// where the functions below move bytes instead of converting each value.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// asFloats views b as float32 when the host is little-endian and b is
// 4-byte aligned, else returns nil.
func asFloats(b []byte) []float32 {
	if !littleEndian || len(b) < 4 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 != 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// PutFloats writes x as little-endian float32 into dst (4*len(x) bytes).
func PutFloats(dst []byte, x []float32) {
	_ = dst[4*len(x)-1]
	if littleEndian && len(x) > 0 {
		copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x)))
		return
	}
	for i, v := range x {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
}

// Floats decodes len(dst) little-endian float32 from src.
func Floats(dst []float32, src []byte) {
	_ = src[4*len(dst)-1]
	if littleEndian && len(dst) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst)), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// AddFloats adds len(dst) little-endian float32 from src into dst, each
// sum rounded to float32.
func AddFloats(dst []float32, src []byte) {
	_ = src[4*len(dst)-1]
	if x := asFloats(src[:4*len(dst)]); x != nil {
		x = x[:len(dst)]
		for i := range dst {
			dst[i] += x[i]
		}
		return
	}
	for i := range dst {
		dst[i] += math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}
