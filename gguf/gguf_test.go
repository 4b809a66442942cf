package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// sampleKVs holds one value of every metadata type, nested arrays included.
func sampleKVs() []KV {
	return []KV{
		{"general.architecture", MustValue("llama")},
		{"t.u8", MustValue(uint8(200))},
		{"t.i8", MustValue(int8(-100))},
		{"t.u16", MustValue(uint16(60000))},
		{"t.i16", MustValue(int16(-30000))},
		{"t.u32", MustValue(uint32(4000000000))},
		{"t.i32", MustValue(int32(-2000000000))},
		{"t.f32", MustValue(float32(1.5))},
		{"t.bool", MustValue(true)},
		{"t.str", MustValue("héllo\x00world")},
		{"t.u64", MustValue(uint64(1) << 63)},
		{"t.i64", MustValue(int64(-1) << 62)},
		{"t.f64", MustValue(math.Pi)},
		{"t.arr.u8", MustValue([]uint8{1, 2, 3})},
		{"t.arr.i8", MustValue([]int8{-1, 2})},
		{"t.arr.u16", MustValue([]uint16{7})},
		{"t.arr.i16", MustValue([]int16{-7, 9})},
		{"t.arr.u32", MustValue([]uint32{1, 1 << 31})},
		{"t.arr.i32", MustValue([]int32{-5, 5})},
		{"t.arr.f32", MustValue([]float32{0.25, float32(math.Inf(-1))})},
		{"t.arr.bool", MustValue([]bool{true, false})},
		{"t.arr.str", MustValue([]string{"a", "", "ccc"})},
		{"t.arr.u64", MustValue([]uint64{math.MaxUint64})},
		{"t.arr.i64", MustValue([]int64{math.MinInt64})},
		{"t.arr.f64", MustValue([]float64{-0.5})},
		{"t.arr.empty", MustValue([]int32{})},
		{"t.arr.nested", MustValue([]Array{
			{Elem: ValueString, Values: []string{"x", "y"}},
			{Elem: ValueArray, Values: []Array{{Elem: ValueUint8, Values: []uint8{9}}}},
		})},
	}
}

func sampleTensors() ([]TensorSpec, [][]byte) {
	specs := []TensorSpec{
		{"a.f32", TypeF32, []int64{3, 2}},
		{"b.q4_k", TypeQ4_K, []int64{512, 2, 1, 3}},
		{"c.q8_0", TypeQ8_0, []int64{64}},
		{"d.iq2_xxs", TypeIQ2_XXS, []int64{256, 1, 2}},
	}
	data := make([][]byte, len(specs))
	for i, s := range specs {
		n, _ := tensorBytes(s.Type, s.Dims)
		data[i] = bytes.Repeat([]byte{byte(i + 1)}, int(n))
	}
	return specs, data
}

func writeSample(t testing.TB, kvs []KV) string {
	t.Helper()
	specs, data := sampleTensors()
	path := filepath.Join(t.TempDir(), "sample.gguf")
	if err := WriteFile(path, kvs, specs, data); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRoundTrip(t *testing.T) {
	for _, align := range []uint32{0, 64, 4096} {
		kvs := sampleKVs()
		if align != 0 {
			kvs = append(kvs, KV{KeyAlignment, MustValue(align)})
		}
		path := writeSample(t, kvs)
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.KV, kvs) {
			t.Errorf("alignment %d: metadata differs after round trip:\n got %v\nwant %v", align, f.KV, kvs)
		}
		specs, data := sampleTensors()
		if len(f.Tensors) != len(specs) {
			t.Fatalf("%d tensors, want %d", len(f.Tensors), len(specs))
		}
		wantAlign := int64(max(align, DefaultAlignment))
		for i, s := range specs {
			got := f.Tensors[i]
			if got.Name != s.Name || got.Type != s.Type || !reflect.DeepEqual(got.Dims, s.Dims) {
				t.Errorf("tensor %d: got %s %v %v, want %s %v %v", i, got.Name, got.Type, got.Dims, s.Name, s.Type, s.Dims)
			}
			if !bytes.Equal(got.Data, data[i]) {
				t.Errorf("tensor %s: data differs", s.Name)
			}
			if got.Offset%wantAlign != 0 || (f.DataOffset(0)+got.Offset)%wantAlign != 0 {
				t.Errorf("tensor %s at %d is not %d-aligned", s.Name, got.Offset, wantAlign)
			}
		}
		if st, _ := os.Stat(path); st.Size()%wantAlign != 0 {
			t.Errorf("file size %d is not padded to %d", st.Size(), wantAlign)
		}
		if err := f.Advise(f.Tensors[1].Data[10:100], AdviseWillNeed); err != nil {
			t.Errorf("Advise: %v", err)
		}
		if err := f.Advise(make([]byte, 10), AdviseWillNeed); err == nil {
			t.Error("Advise accepted memory outside the mapping")
		}
		f.Close()
	}
}

func TestAccessors(t *testing.T) {
	f, err := Open(writeSample(t, sampleKVs()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if s, err := f.String("t.str"); err != nil || s != "héllo\x00world" {
		t.Errorf("String = %q, %v", s, err)
	}
	if n, err := f.Int("t.u16"); err != nil || n != 60000 {
		t.Errorf("Int(u16) = %d, %v", n, err)
	}
	if n, err := f.Uint32("t.u32"); err != nil || n != 4000000000 {
		t.Errorf("Uint32 = %d, %v", n, err)
	}
	if _, err := f.Uint32("t.i32"); err == nil {
		t.Error("Uint32 of a negative value did not fail")
	}
	if v, err := f.Float("t.f32"); err != nil || v != 1.5 {
		t.Errorf("Float = %v, %v", v, err)
	}
	if s, err := f.Strings("t.arr.str"); err != nil || len(s) != 3 {
		t.Errorf("Strings = %v, %v", s, err)
	}
	if v, err := f.Ints("t.arr.u32"); err != nil || v[1] != 1<<31 {
		t.Errorf("Ints = %v, %v", v, err)
	}
	_, err = f.String("t.u32")
	var te *TypeError
	if !errors.As(err, &te) || te.Key != "t.u32" || te.Got != "uint32" || te.Want != "string" {
		t.Errorf("String(t.u32) error = %v, want a TypeError naming key and both types", err)
	}
	if _, err := f.Float32s("t.arr.i32"); !errors.As(err, &te) || te.Got != "array of int32" {
		t.Errorf("Float32s(int32 array) error = %v", err)
	}
	if _, err := f.Int("missing.key"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("missing key error = %v, want ErrKeyNotFound", err)
	}
}

// header builds raw GGUF bytes field by field for the bad-input table.
type hb struct{ bytes.Buffer }

func (b *hb) u32(v uint32) *hb { binary.Write(b, binary.LittleEndian, v); return b }
func (b *hb) u64(v uint64) *hb { binary.Write(b, binary.LittleEndian, v); return b }
func (b *hb) str(s string) *hb { b.u64(uint64(len(s))); b.WriteString(s); return b }
func (b *hb) pad(a int) *hb {
	for b.Len()%a != 0 {
		b.WriteByte(0)
	}
	return b
}

func start(nt, nkv uint64) *hb {
	b := &hb{}
	b.WriteString("GGUF")
	return b.u32(3).u64(nt).u64(nkv)
}

// tensor appends one tensor info.
func (b *hb) tensor(name string, typ uint32, off uint64, dims ...uint64) *hb {
	b.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		b.u64(d)
	}
	return b.u32(typ).u64(off)
}

func (b *hb) data(n int) []byte {
	b.pad(32)
	b.Write(make([]byte, n))
	return b.Bytes()
}

func TestBadInput(t *testing.T) {
	good := func() []byte { return start(1, 0).tensor("w", 0, 0, 4, 2).data(32) }
	if _, err := Parse(good()); err != nil {
		t.Fatalf("the well-formed base case fails: %v", err)
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated magic", []byte("GG")},
		{"wrong magic", append([]byte("GGML"), good()[4:]...)},
		{"version 1", func() []byte { b := &hb{}; b.WriteString("GGUF"); return b.u32(1).u64(0).u64(0).Bytes() }()},
		{"version 4", func() []byte { b := &hb{}; b.WriteString("GGUF"); return b.u32(4).u64(0).u64(0).Bytes() }()},
		{"big endian", func() []byte { b := &hb{}; b.WriteString("GGUF"); return b.u32(3 << 24).u64(0).u64(0).Bytes() }()},
		{"truncated counts", good()[:12]},
		{"huge tensor count", start(1<<62, 0).Bytes()},
		{"huge kv count", start(0, 1<<40).Bytes()},
		{"huge string length", start(0, 1).u64(1 << 60).u64(0).u64(0).Bytes()},
		{"huge array count", start(0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueUint32)).u64(1 << 40).Bytes()},
		{"huge string array", start(0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(1 << 30).Bytes()},
		{"unknown value type", start(0, 1).str("k").u32(99).u32(0).Bytes()},
		{"unknown array element type", start(0, 1).str("k").u32(uint32(ValueArray)).u32(77).u64(1).Bytes()},
		{"bad bool", func() []byte {
			b := start(0, 1).str("k").u32(uint32(ValueBool))
			b.WriteByte(7)
			return b.Bytes()
		}()},
		{"deep nesting", func() []byte {
			b := start(0, 1).str("k").u32(uint32(ValueArray))
			for i := 0; i < 20; i++ {
				b.u32(uint32(ValueArray)).u64(1)
			}
			return b.u32(uint32(ValueUint8)).u64(0).Bytes()
		}()},
		{"duplicate key", func() []byte {
			b := start(0, 2)
			b.str("k").u32(uint32(ValueUint8)).WriteByte(1)
			b.str("k").u32(uint32(ValueUint8)).WriteByte(2)
			return b.Bytes()
		}()},
		{"alignment not power of two", start(0, 1).str(KeyAlignment).u32(uint32(ValueUint32)).u32(48).Bytes()},
		{"alignment wrong type", start(0, 1).str(KeyAlignment).u32(uint32(ValueUint64)).u64(32).Bytes()},
		{"unknown type id", start(1, 0).tensor("w", 4, 0, 32).data(32)},
		{"type id beyond table", start(1, 0).tensor("w", 99, 0, 32).data(32)},
		{"zero dims", start(1, 0).tensor("w", 0, 0).data(32)},
		{"five dims", start(1, 0).tensor("w", 0, 0, 1, 1, 1, 1, 1).data(32)},
		{"dims overflow", start(1, 0).tensor("w", 0, 0, 1<<40, 1<<40).data(32)},
		{"negative dim", start(1, 0).tensor("w", 0, 0, 1<<63).data(32)},
		{"row not whole blocks", start(1, 0).tensor("w", uint32(TypeQ8_0), 0, 33).data(64)},
		{"data out of bounds", start(1, 0).tensor("w", 0, 0, 64).data(32)},
		{"offset out of bounds", start(1, 0).tensor("w", 0, 1<<40, 4).data(32)},
		{"misaligned offset", start(2, 0).tensor("a", 0, 0, 4).tensor("b", 0, 16, 4).data(64)},
		{"overlapping tensors", start(2, 0).tensor("a", 0, 0, 16).tensor("b", 0, 32, 16).data(96)},
		{"duplicate tensor", start(2, 0).tensor("a", 0, 0, 4).tensor("a", 0, 32, 4).data(64)},
		{"truncated tensor info", start(1, 0).str("a_long_tensor_name_here").u32(2).u64(4).Bytes()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data)
			if err == nil {
				t.Fatalf("accepted: %d tensors", len(f.Tensors))
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %q does not wrap ErrFormat", err)
			}
			t.Log(err)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "nope.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("opened a directory")
	}
	p := filepath.Join(dir, "short.gguf")
	os.WriteFile(p, []byte("GGUF"), 0o644)
	if _, err := Open(p); !errors.Is(err, ErrFormat) {
		t.Errorf("4-byte file: %v", err)
	}
}

func TestSplit(t *testing.T) {
	dir := t.TempDir()
	specs, data := sampleTensors()
	prefix := filepath.Join(dir, "m")
	for i := 0; i < 2; i++ {
		kvs := []KV{
			{KeySplitNo, MustValue(uint16(i))},
			{KeySplitCount, MustValue(uint16(2))},
			{KeySplitTensors, MustValue(int32(len(specs)))},
		}
		if i == 0 {
			kvs = append([]KV{{KeyArchitecture, MustValue("llama")}}, kvs...)
		}
		lo, hi := 2*i, 2*i+2
		if err := WriteFile(SplitPath(prefix, i, 2), kvs, specs[lo:hi], data[lo:hi]); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Open(SplitPath(prefix, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Parts() != 2 || len(f.Tensors) != 4 {
		t.Fatalf("parts %d tensors %d, want 2 and 4", f.Parts(), len(f.Tensors))
	}
	for i, s := range specs {
		tt, ok := f.Tensor(s.Name)
		if !ok || !bytes.Equal(tt.Data, data[i]) || tt.Split != i/2 {
			t.Errorf("tensor %s missing or wrong (split %d)", s.Name, tt.Split)
		}
	}
	if _, err := Open(SplitPath(prefix, 1, 2)); err == nil {
		t.Error("opening the second part alone should say to open the first")
	}
	os.Remove(SplitPath(prefix, 1, 2))
	if _, err := Open(SplitPath(prefix, 0, 2)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing part: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	specs, data := sampleTensors()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, sampleKVs(), specs)
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range data {
		w.WriteTensor(d)
	}
	w.Close()
	f.Add(buf.Bytes())
	f.Add(start(1, 0).tensor("w", 0, 0, 4, 2).data(32))
	f.Add(start(2, 0).tensor("a", 0, 0, 16).tensor("b", 0, 64, 16).data(128))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		for _, tt := range g.Tensors {
			if int64(len(tt.Data)) != tt.Size {
				t.Fatalf("tensor %s: %d data bytes, size %d", tt.Name, len(tt.Data), tt.Size)
			}
		}
	})
}
