package kernels

import (
	"fmt"

	"github.com/inference-x/inference-x/gguf"
)

// DequantizeRow decodes the row src of type t into dst after checking that
// len(dst) is a whole number of blocks and src holds exactly those blocks.
// It is the entry point for bytes from outside (files, RPCs).
func DequantizeRow(t gguf.Type, dst []float32, src []byte) error {
	f, err := Lookup(t)
	if err != nil {
		return err
	}
	if f.Dequantize == nil {
		return fmt.Errorf("%w: %v has no dequantizer", ErrNoKernel, t)
	}
	if err := CheckRow(t, len(dst), src); err != nil {
		return err
	}
	f.Dequantize(dst, src)
	return nil
}

// QuantizeRow encodes src into dst as type t with ggml's reference
// quantizer; imatrix (one weight per column) may be nil unless the type
// requires one.
func QuantizeRow(t gguf.Type, dst []byte, src []float32, imatrix []float32) error {
	f, err := Lookup(t)
	if err != nil {
		return err
	}
	if f.Quantize == nil {
		return fmt.Errorf("%w: cannot quantize to %v", ErrNoKernel, t)
	}
	if err := CheckRow(t, len(src), dst); err != nil {
		return err
	}
	if imatrix != nil && len(imatrix) != len(src) {
		return fmt.Errorf("kernels: importance matrix has %d columns, row has %d", len(imatrix), len(src))
	}
	if f.NeedsImatrix && imatrix == nil {
		return fmt.Errorf("kernels: quantizing to %v needs an importance matrix", t)
	}
	f.Quantize(dst, src, imatrix)
	return nil
}
