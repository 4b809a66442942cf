package kernels

import (
	"errors"
	"fmt"

	"github.com/inference-x/inference-x/gguf"
)

// ErrNoKernel is returned for a type that has no implementation of the
// requested operation (for example quantizing to Q8_1 without a dequantizer).
var ErrNoKernel = errors.New("kernels: operation not supported for this type")

// Format is one ggml weight format and its pure-Go kernels. Every function
// works on whole rows: a row of n elements is n/BlockSize blocks; callers
// check lengths (see CheckRow) before calling, the functions themselves
// assume valid sizes.
//
// All functions are safe for concurrent use; they keep no state.
type Format struct {
	// Type is the ggml type id.
	Type gguf.Type
	// VecDot is the companion type the activation row is quantized to for
	// the integer dot product (ggml's vec_dot_type). Zero value F32 means
	// the dot runs on f32 activations.
	VecDot gguf.Type
	// NeedsImatrix is true when ggml refuses to quantize without an
	// importance matrix (IQ2_XXS, IQ2_XS, IQ1_S).
	NeedsImatrix bool

	// Dequantize decodes len(dst) values from src. Nil when ggml has no
	// dequantizer (Q8_1).
	Dequantize func(dst []float32, src []byte)
	// Quantize encodes one row src into dst with ggml's reference algorithm
	// (quantize_row_*_ref without an importance matrix, or the imatrix
	// variant when imatrix is non-nil; imatrix has one weight per column).
	// Nil for types that cannot be quantized to.
	Quantize func(dst []byte, src []float32, imatrix []float32)
	// QuantizeCPU is ggml-cpu's run-time from_float for this type, which for
	// some types (Q8_0, Q8_1 on x86, IQ4_NL) differs from Quantize. Nil means
	// it is Quantize without an importance matrix.
	QuantizeCPU func(dst []byte, src []float32)
	// Dot returns the dot product of a weight row w of n elements with an
	// activation row a already quantized to VecDot, in ggml's arithmetic.
	Dot func(n int, w, a []byte) float32
	// DotF32 returns the dot product of the weight row w with the f32 row x
	// (len(x) elements), decoding weights in registers with no buffer.
	DotF32 func(w []byte, x []float32) float32
}

// formats is filled by the init functions of the per-type files and read-only
// afterwards.
var formats [gguf.TypeCount]*Format

func register(f *Format) {
	if formats[f.Type] != nil {
		panic(fmt.Sprintf("kernels: format %v registered twice", f.Type))
	}
	formats[f.Type] = f
	wrapDot(f.Type)
}

// Lookup returns the kernels for t, or an error naming the type when this
// build has none.
func Lookup(t gguf.Type) (*Format, error) {
	if t < gguf.TypeCount && formats[t] != nil {
		return formats[t], nil
	}
	return nil, fmt.Errorf("%w: %v", ErrNoKernel, t)
}

// Formats returns every registered format in type-id order.
func Formats() []*Format {
	var out []*Format
	for _, f := range formats {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// CheckRow returns an error unless a row of n elements of type t is a whole
// number of blocks and fits exactly in len(row) bytes.
func CheckRow(t gguf.Type, n int, row []byte) error {
	want, err := t.RowBytes(n)
	if err != nil {
		return err
	}
	if len(row) != want {
		return fmt.Errorf("kernels: %v row of %d elements needs %d bytes, got %d", t, n, want, len(row))
	}
	return nil
}
