package model

import (
	"fmt"
	"unsafe"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// ErrTensor is wrapped by errors about missing or mis-shaped tensors.
var ErrTensor = fmt.Errorf("model: bad tensor")

// loader fetches tensors by name and checks their shapes, remembering the
// first error so architecture files read as a list of tensors.
type loader struct {
	f    *gguf.File
	over *gguf.File // tensors taken from here first (precision variants); or nil
	err  error
}

func (l *loader) fail(err error) {
	if l.err == nil {
		l.err = err
	}
}

// tensor returns the named tensor with exactly dims (ggml order: row
// length first), or nil if it is absent and optional.
func (l *loader) tensor(name string, optional bool, dims ...int) *gguf.Tensor {
	t, ok := l.f.Tensor(name)
	if l.over != nil {
		if ot, found := l.over.Tensor(name); found {
			t, ok = ot, true
		}
	}
	if !ok {
		if !optional {
			l.fail(fmt.Errorf("%w: missing tensor %s", ErrTensor, name))
		}
		return nil
	}
	// Trailing dimensions of 1 may be omitted on either side.
	for i := 0; i < max(len(dims), len(t.Dims)); i++ {
		want, got := int64(1), int64(1)
		if i < len(dims) {
			want = int64(dims[i])
		}
		if i < len(t.Dims) {
			got = t.Dims[i]
		}
		if want != got {
			l.fail(fmt.Errorf("%w: tensor %s has shape %s, want %v", ErrTensor, name, t.Shape(), dims))
			return nil
		}
	}
	return t
}

// matrix returns the named 2-D weight (rows of cols elements).
func (l *loader) matrix(name string, cols, rows int) *kernels.Matrix {
	return l.matrixOpt(name, false, cols, rows)
}

func (l *loader) matrixOpt(name string, optional bool, cols, rows int) *kernels.Matrix {
	t := l.tensor(name, optional, cols, rows)
	if t == nil {
		return nil
	}
	m, err := kernels.NewMatrix(t.Type, rows, cols, t.Data)
	if err != nil {
		l.fail(fmt.Errorf("%w: tensor %s: %v", ErrTensor, name, err))
		return nil
	}
	return &m
}

// vector returns a 1-D F32 tensor as a []float32 view of the mapping
// (other types are decoded onto the heap: they are small).
func (l *loader) vector(name string, n int) []float32 {
	return l.vectorOpt(name, false, n)
}

func (l *loader) vectorOpt(name string, optional bool, n int) []float32 {
	t := l.tensor(name, optional, n)
	if t == nil {
		return nil
	}
	return l.floats(t)
}

// floats views an F32 tensor's data as float32 (GGUF data is at least
// 32-byte aligned) or dequantizes other types.
func (l *loader) floats(t *gguf.Tensor) []float32 {
	n := int(t.Elements())
	if t.Type == gguf.TypeF32 {
		if n == 0 {
			return nil
		}
		return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(t.Data))), n)
	}
	out := make([]float32, n)
	if err := kernels.DequantizeRow(t.Type, out, t.Data); err != nil {
		l.fail(fmt.Errorf("%w: tensor %s: %v", ErrTensor, t.Name, err))
	}
	return out
}

// blk formats a per-layer tensor name.
func blk(layer int, name string) string { return fmt.Sprintf("blk.%d.%s", layer, name) }
