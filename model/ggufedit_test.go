package model

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// ggufEdit is a GGUF file held in memory for tests to change and write
// back: metadata, tensor declarations and data.
type ggufEdit struct {
	kvs   []gguf.KV
	specs []gguf.TensorSpec
	data  [][]byte
}

// readEdit loads the GGUF at path for editing (the data is copied).
func readEdit(t testing.TB, path string) *ggufEdit {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := &ggufEdit{kvs: slices.Clone(f.KV)}
	for _, tn := range f.Tensors {
		e.specs = append(e.specs, gguf.TensorSpec{Name: tn.Name, Type: tn.Type, Dims: slices.Clone(tn.Dims)})
		e.data = append(e.data, slices.Clone(tn.Data))
	}
	return e
}

// set sets (or adds) metadata key k.
func (e *ggufEdit) set(k string, v any) {
	val := gguf.MustValue(v)
	for i := range e.kvs {
		if e.kvs[i].Key == k {
			e.kvs[i].Value = val
			return
		}
	}
	e.kvs = append(e.kvs, gguf.KV{Key: k, Value: val})
}

// del removes metadata key k.
func (e *ggufEdit) del(k string) {
	e.kvs = slices.DeleteFunc(e.kvs, func(kv gguf.KV) bool { return kv.Key == k })
}

// tensor returns the index of the named tensor, or -1.
func (e *ggufEdit) tensor(name string) int {
	return slices.IndexFunc(e.specs, func(s gguf.TensorSpec) bool { return s.Name == name })
}

// f32 returns the named F32 tensor's values (a copy).
func (e *ggufEdit) f32(t testing.TB, name string) []float32 {
	t.Helper()
	i := e.tensor(name)
	if i < 0 || e.specs[i].Type != gguf.TypeF32 {
		t.Fatalf("no F32 tensor %s", name)
	}
	return bytesF32(e.data[i])
}

// remove drops the named tensor.
func (e *ggufEdit) remove(name string) {
	if i := e.tensor(name); i >= 0 {
		e.specs = slices.Delete(e.specs, i, i+1)
		e.data = slices.Delete(e.data, i, i+1)
	}
}

// put adds or replaces an F32 tensor.
func (e *ggufEdit) put(name string, x []float32, dims ...int64) {
	e.remove(name)
	e.specs = append(e.specs, gguf.TensorSpec{Name: name, Type: gguf.TypeF32, Dims: dims})
	e.data = append(e.data, f32Bytes(x))
}

// write writes the file into the test's temporary folder.
func (e *ggufEdit) write(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := gguf.WriteFile(p, e.kvs, e.specs, e.data); err != nil {
		t.Fatal(err)
	}
	return p
}

func bytesF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func f32Bytes(x []float32) []byte {
	out := make([]byte, 0, 4*len(x))
	for _, v := range x {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}
