package kernels

import (
	"fmt"

	"github.com/inference-x/inference-x/gguf"
)

// isActivationType reports whether t is one of the companion types a weight
// row's dot product runs against (Format.VecDot).
func isActivationType(t gguf.Type) bool {
	switch t {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ8_1, gguf.TypeQ8_K:
		return true
	}
	return false
}

// ActivationBytes returns the bytes an activation row of n elements takes
// as companion type t, or 0 when t is not an activation type or n is not a
// whole number of its blocks.
func ActivationBytes(t gguf.Type, n int) int {
	if !isActivationType(t) {
		return 0
	}
	b, err := t.RowBytes(n)
	if err != nil {
		return 0
	}
	return b
}

// QuantizeActivation quantizes the f32 activation row x into dst as
// companion type t (F32, F16, BF16, Q8_0, Q8_1 or Q8_K) with the rule
// ggml-cpu applies at run time on x86: Format.QuantizeCPU where the format
// has one (Q8_0 and Q8_1: 127/amax, ties to even), otherwise the reference
// quantizer. len(dst) must be ActivationBytes(t, len(x)). It does not
// allocate unless it returns an error, and is safe for concurrent use.
func QuantizeActivation(t gguf.Type, dst []byte, x []float32) error {
	if !isActivationType(t) {
		return fmt.Errorf("%w: %v is not an activation type", ErrNoKernel, t)
	}
	f, err := Lookup(t)
	if err != nil {
		return err
	}
	if err := CheckRow(t, len(x), dst); err != nil {
		return err
	}
	if f.QuantizeCPU != nil {
		f.QuantizeCPU(dst, x)
	} else {
		f.Quantize(dst, x, nil)
	}
	return nil
}
