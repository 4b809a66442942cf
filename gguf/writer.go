package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// TensorSpec declares a tensor for the Writer: its data comes later, in
// declaration order, through WriteTensor.
type TensorSpec struct {
	Name string
	Type Type
	Dims []int64
}

// Writer streams a GGUF v3 file: the header (metadata and tensor infos)
// first, then each tensor's data in declaration order with the padding
// llama.cpp expects (every tensor at a multiple of the alignment, the file
// padded to it at the end). Memory use does not grow with the data.
type Writer struct {
	w         *bufio.Writer
	specs     []TensorSpec
	sizes     []int64
	alignment int64
	next      int   // index of the next tensor to write
	written   int64 // bytes written so far
	err       error
}

// NewWriter writes the header for kvs and tensors to w and returns a
// Writer expecting the tensor data. general.alignment in kvs, if present,
// sets the alignment (a power of two); otherwise it is 32.
func NewWriter(w io.Writer, kvs []KV, tensors []TensorSpec) (*Writer, error) {
	gw := &Writer{w: bufio.NewWriterSize(w, 1<<20), specs: tensors, alignment: DefaultAlignment}
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return nil, fmt.Errorf("gguf: duplicate metadata key %q", kv.Key)
		}
		seen[kv.Key] = true
		if kv.Key == KeyAlignment {
			a, ok := kv.Value.Any.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return nil, fmt.Errorf("gguf: %s must be a uint32 power of two, got %v", KeyAlignment, kv.Value)
			}
			gw.alignment = int64(a)
		}
	}
	names := map[string]bool{}
	for _, t := range tensors {
		if names[t.Name] {
			return nil, fmt.Errorf("gguf: duplicate tensor name %q", t.Name)
		}
		names[t.Name] = true
		if len(t.Dims) == 0 || len(t.Dims) > MaxDims {
			return nil, fmt.Errorf("gguf: tensor %q has %d dimensions (want 1 to %d)", t.Name, len(t.Dims), MaxDims)
		}
		if !t.Type.Valid() {
			return nil, fmt.Errorf("gguf: tensor %q has unknown type %v", t.Name, t.Type)
		}
		for _, d := range t.Dims {
			if d < 0 {
				return nil, fmt.Errorf("gguf: tensor %q has negative dimension %v", t.Name, t.Dims)
			}
		}
		size, err := tensorBytes(t.Type, t.Dims)
		if err != nil {
			return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		gw.sizes = append(gw.sizes, size)
	}

	gw.raw([]byte(Magic))
	gw.u32(3)
	gw.u64(uint64(len(tensors)))
	gw.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		gw.str(kv.Key)
		gw.u32(uint32(kv.Value.Type))
		if err := gw.value(kv.Value); err != nil {
			return nil, fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	var off int64
	for i, t := range tensors {
		gw.str(t.Name)
		gw.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			gw.u64(uint64(d))
		}
		gw.u32(uint32(t.Type))
		gw.u64(uint64(off))
		off = alignUp(off+gw.sizes[i], gw.alignment)
	}
	gw.pad()
	return gw, gw.err
}

// WriteTensor writes the data of the next declared tensor; len(data) must
// be its exact size.
func (w *Writer) WriteTensor(data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.next >= len(w.specs) {
		return errors.New("gguf: WriteTensor: all declared tensors are written")
	}
	if int64(len(data)) != w.sizes[w.next] {
		return fmt.Errorf("gguf: tensor %q needs %d bytes, got %d", w.specs[w.next].Name, w.sizes[w.next], len(data))
	}
	w.raw(data)
	w.pad()
	w.next++
	return w.err
}

// NextTensor returns the spec of the tensor WriteTensor expects next.
func (w *Writer) NextTensor() (TensorSpec, bool) {
	if w.next >= len(w.specs) {
		return TensorSpec{}, false
	}
	return w.specs[w.next], true
}

// Close flushes the file; it fails if a declared tensor was not written.
// It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err == nil && w.next != len(w.specs) {
		w.err = fmt.Errorf("gguf: %d of %d tensors written", w.next, len(w.specs))
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	return w.err
}

func (w *Writer) raw(p []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(p)
	w.written += int64(n)
	w.err = err
}

func (w *Writer) pad() {
	var zeros [64]byte
	for n := alignUp(w.written, w.alignment) - w.written; n > 0 && w.err == nil; n -= min(n, 64) {
		w.raw(zeros[:min(n, 64)])
	}
}

func (w *Writer) u32(v uint32) { w.raw(binary.LittleEndian.AppendUint32(nil, v)) }
func (w *Writer) u64(v uint64) { w.raw(binary.LittleEndian.AppendUint64(nil, v)) }

func (w *Writer) str(s string) {
	w.u64(uint64(len(s)))
	w.raw([]byte(s))
}

func (w *Writer) value(v Value) error {
	var b []byte
	le := binary.LittleEndian
	switch x := v.Any.(type) {
	case uint8:
		b = []byte{x}
	case int8:
		b = []byte{byte(x)}
	case uint16:
		b = le.AppendUint16(nil, x)
	case int16:
		b = le.AppendUint16(nil, uint16(x))
	case uint32:
		b = le.AppendUint32(nil, x)
	case int32:
		b = le.AppendUint32(nil, uint32(x))
	case float32:
		b = le.AppendUint32(nil, math.Float32bits(x))
	case bool:
		if x {
			b = []byte{1}
		} else {
			b = []byte{0}
		}
	case string:
		w.str(x)
		return nil
	case uint64:
		b = le.AppendUint64(nil, x)
	case int64:
		b = le.AppendUint64(nil, uint64(x))
	case float64:
		b = le.AppendUint64(nil, math.Float64bits(x))
	case Array:
		return w.array(x)
	default:
		return fmt.Errorf("cannot encode %T", v.Any)
	}
	if t, _ := NewValue(v.Any); t.Type != v.Type {
		return fmt.Errorf("value %v is %v, tagged %v", v.Any, t.Type, v.Type)
	}
	w.raw(b)
	return nil
}

func (w *Writer) array(a Array) error {
	et, ok := sliceElemType(a.Values)
	if !ok || et != a.Elem {
		return fmt.Errorf("array of %v holds %T", a.Elem, a.Values)
	}
	w.u32(uint32(a.Elem))
	w.u64(uint64(a.Len()))
	if ss, ok := a.Values.([]string); ok {
		for _, s := range ss {
			w.str(s)
		}
		return nil
	}
	if as, ok := a.Values.([]Array); ok {
		for _, x := range as {
			if err := w.array(x); err != nil {
				return err
			}
		}
		return nil
	}
	le := binary.LittleEndian
	var b []byte
	switch v := a.Values.(type) {
	case []uint8:
		b = v
	case []int8:
		for _, x := range v {
			b = append(b, byte(x))
		}
	case []bool:
		for _, x := range v {
			if x {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	case []uint16:
		for _, x := range v {
			b = le.AppendUint16(b, x)
		}
	case []int16:
		for _, x := range v {
			b = le.AppendUint16(b, uint16(x))
		}
	case []uint32:
		for _, x := range v {
			b = le.AppendUint32(b, x)
		}
	case []int32:
		for _, x := range v {
			b = le.AppendUint32(b, uint32(x))
		}
	case []float32:
		for _, x := range v {
			b = le.AppendUint32(b, math.Float32bits(x))
		}
	case []uint64:
		for _, x := range v {
			b = le.AppendUint64(b, x)
		}
	case []int64:
		for _, x := range v {
			b = le.AppendUint64(b, uint64(x))
		}
	case []float64:
		for _, x := range v {
			b = le.AppendUint64(b, math.Float64bits(x))
		}
	}
	w.raw(b)
	return nil
}

// WriteFile writes a whole GGUF file at path from in-memory tensor data
// (data[i] belongs to tensors[i]). For large models stream with NewWriter.
func WriteFile(path string, kvs []KV, tensors []TensorSpec, data [][]byte) (err error) {
	if len(data) != len(tensors) {
		return fmt.Errorf("gguf: %d tensors but %d data slices", len(tensors), len(data))
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	w, err := NewWriter(out, kvs, tensors)
	if err != nil {
		return err
	}
	for _, d := range data {
		if err := w.WriteTensor(d); err != nil {
			return err
		}
	}
	return w.Close()
}
