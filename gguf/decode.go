package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"
)

// Magic is the four bytes every GGUF file starts with.
const Magic = "GGUF"

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// MaxDims is the largest number of dimensions a tensor may have.
const MaxDims = 4

// decoder reads little-endian GGUF fields from b, recording the first error.
// Every length is checked against the bytes left, so a count the file could
// not hold fails before anything is allocated for it.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format+" (at byte %d)", append([]any{ErrFormat}, append(args, d.off)...)...)
	}
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.left() {
		d.fail("truncated: %s needs %d bytes, %d left", what, n, d.left())
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) u8(what string) uint8 {
	if p := d.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16(what string) uint16 {
	if p := d.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if p := d.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if p := d.take(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// count reads a u64 element count and checks that count elements of at
// least minSize bytes each fit in what is left of the file.
func (d *decoder) count(what string, minSize int) int {
	n := d.u64(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(d.left()/minSize) {
		d.fail("%s %d cannot fit in the %d bytes left", what, n, d.left())
		return 0
	}
	return int(n)
}

func (d *decoder) str(what string) string {
	n := d.u64(what + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(d.left()) {
		d.fail("%s length %d exceeds the %d bytes left", what, n, d.left())
		return ""
	}
	return string(d.take(int(n), what))
}

// maxNesting bounds arrays of arrays so a hostile file cannot recurse deeply.
const maxNesting = 8

func (d *decoder) value(t ValueType, what string, depth int) Value {
	switch t {
	case ValueUint8:
		return Value{t, d.u8(what)}
	case ValueInt8:
		return Value{t, int8(d.u8(what))}
	case ValueUint16:
		return Value{t, d.u16(what)}
	case ValueInt16:
		return Value{t, int16(d.u16(what))}
	case ValueUint32:
		return Value{t, d.u32(what)}
	case ValueInt32:
		return Value{t, int32(d.u32(what))}
	case ValueFloat32:
		return Value{t, math.Float32frombits(d.u32(what))}
	case ValueBool:
		b := d.u8(what)
		if b > 1 {
			d.fail("%s: bool value %d is neither 0 nor 1", what, b)
		}
		return Value{t, b == 1}
	case ValueString:
		return Value{t, d.str(what)}
	case ValueUint64:
		return Value{t, d.u64(what)}
	case ValueInt64:
		return Value{t, int64(d.u64(what))}
	case ValueFloat64:
		return Value{t, math.Float64frombits(d.u64(what))}
	case ValueArray:
		if depth >= maxNesting {
			d.fail("%s: arrays nested deeper than %d", what, maxNesting)
			return Value{}
		}
		return Value{t, d.array(what, depth+1)}
	}
	d.fail("%s: unknown value type %d", what, uint32(t))
	return Value{}
}

func (d *decoder) array(what string, depth int) Array {
	et := ValueType(d.u32(what + " element type"))
	if d.err != nil {
		return Array{}
	}
	minSize := et.size()
	switch et {
	case ValueString:
		minSize = 8
	case ValueArray:
		minSize = 12
	}
	if minSize == 0 {
		d.fail("%s: unknown array element type %d", what, uint32(et))
		return Array{}
	}
	n := d.count(what+" element count", minSize)
	if d.err != nil {
		return Array{}
	}
	a := Array{Elem: et}
	switch et {
	case ValueUint8:
		a.Values = append([]uint8(nil), d.take(n, what)...)
	case ValueInt8:
		p := d.take(n, what)
		v := make([]int8, len(p))
		for i := range p {
			v[i] = int8(p[i])
		}
		a.Values = v
	case ValueBool:
		p := d.take(n, what)
		v := make([]bool, len(p))
		for i := range p {
			if p[i] > 1 {
				d.fail("%s: bool element %d is %d", what, i, p[i])
			}
			v[i] = p[i] == 1
		}
		a.Values = v
	case ValueUint16, ValueInt16:
		p := d.take(2*n, what)
		if et == ValueUint16 {
			v := make([]uint16, n)
			for i := range v {
				v[i] = binary.LittleEndian.Uint16(p[2*i:])
			}
			a.Values = v
		} else {
			v := make([]int16, n)
			for i := range v {
				v[i] = int16(binary.LittleEndian.Uint16(p[2*i:]))
			}
			a.Values = v
		}
	case ValueUint32, ValueInt32, ValueFloat32:
		p := d.take(4*n, what)
		switch et {
		case ValueUint32:
			v := make([]uint32, n)
			for i := range v {
				v[i] = binary.LittleEndian.Uint32(p[4*i:])
			}
			a.Values = v
		case ValueInt32:
			v := make([]int32, n)
			for i := range v {
				v[i] = int32(binary.LittleEndian.Uint32(p[4*i:]))
			}
			a.Values = v
		default:
			v := make([]float32, n)
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
			}
			a.Values = v
		}
	case ValueUint64, ValueInt64, ValueFloat64:
		p := d.take(8*n, what)
		switch et {
		case ValueUint64:
			v := make([]uint64, n)
			for i := range v {
				v[i] = binary.LittleEndian.Uint64(p[8*i:])
			}
			a.Values = v
		case ValueInt64:
			v := make([]int64, n)
			for i := range v {
				v[i] = int64(binary.LittleEndian.Uint64(p[8*i:]))
			}
			a.Values = v
		default:
			v := make([]float64, n)
			for i := range v {
				v[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[8*i:]))
			}
			a.Values = v
		}
	case ValueString:
		v := make([]string, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			v = append(v, d.str(what))
		}
		a.Values = v
	case ValueArray:
		v := make([]Array, 0, n)
		for i := 0; i < n && d.err == nil; i++ {
			v = append(v, d.array(what, depth+1))
			if depth+1 > maxNesting {
				d.fail("%s: arrays nested deeper than %d", what, maxNesting)
			}
		}
		a.Values = v
	}
	if d.err != nil {
		return Array{}
	}
	return a
}

// header is everything before the data section of one GGUF file.
type header struct {
	version    uint32
	kvs        []KV
	tensors    []Tensor
	alignment  int
	dataOffset int64
}

// decodeHeader parses and validates the header of the GGUF bytes b (the
// whole file, so tensor bounds can be checked against its size).
func decodeHeader(b []byte) (*header, error) {
	d := &decoder{b: b}
	magic := d.take(4, "magic")
	if d.err != nil {
		return nil, d.err
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("%w: not a GGUF file (magic %q, want %q)", ErrFormat, magic, Magic)
	}
	h := &header{version: d.u32("version")}
	switch {
	case d.err != nil:
		return nil, d.err
	case h.version == 1:
		return nil, fmt.Errorf("%w: GGUF version 1 is not supported (only 2 and 3); re-convert the model with a current llama.cpp", ErrFormat)
	case h.version != 2 && h.version != 3:
		if bits.ReverseBytes32(h.version) == 2 || bits.ReverseBytes32(h.version) == 3 {
			return nil, fmt.Errorf("%w: big-endian GGUF is not supported", ErrFormat)
		}
		return nil, fmt.Errorf("%w: unsupported GGUF version %d (supported: 2, 3)", ErrFormat, h.version)
	}
	// A tensor info takes at least 8 (name length) + 4 (n_dims) + 8 (one
	// dim) + 4 (type) + 8 (offset) bytes; a KV at least 8 + 4 + 1.
	nTensors := d.count("tensor count", 32)
	nKV := d.count("metadata key count", 13)
	if d.err != nil {
		return nil, d.err
	}
	h.alignment = DefaultAlignment
	seen := make(map[string]bool, nKV)
	h.kvs = make([]KV, 0, nKV)
	for i := 0; i < nKV && d.err == nil; i++ {
		key := d.str("metadata key")
		t := ValueType(d.u32("value type of " + key))
		v := d.value(t, "value of "+key, 0)
		if d.err != nil {
			break
		}
		if seen[key] {
			return nil, fmt.Errorf("%w: duplicate metadata key %q", ErrFormat, key)
		}
		seen[key] = true
		h.kvs = append(h.kvs, KV{key, v})
		if key == KeyAlignment {
			a, ok := v.Any.(uint32)
			if !ok {
				return nil, fmt.Errorf("%w: %s holds %s, want uint32", ErrFormat, KeyAlignment, v.typeName())
			}
			if a == 0 || a&(a-1) != 0 {
				return nil, fmt.Errorf("%w: %s = %d is not a power of two", ErrFormat, KeyAlignment, a)
			}
			h.alignment = int(a)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	names := make(map[string]bool, nTensors)
	h.tensors = make([]Tensor, 0, nTensors)
	for i := 0; i < nTensors && d.err == nil; i++ {
		t := d.tensorInfo()
		if d.err != nil {
			break
		}
		if names[t.Name] {
			return nil, fmt.Errorf("%w: duplicate tensor name %q", ErrFormat, t.Name)
		}
		names[t.Name] = true
		h.tensors = append(h.tensors, t)
	}
	if d.err != nil {
		return nil, d.err
	}
	h.dataOffset = alignUp(int64(d.off), int64(h.alignment))
	if err := h.checkTensors(int64(len(b))); err != nil {
		return nil, err
	}
	return h, nil
}

func (d *decoder) tensorInfo() Tensor {
	var t Tensor
	t.Name = d.str("tensor name")
	nd := d.u32("dimension count of " + t.Name)
	if d.err != nil {
		return t
	}
	if nd == 0 || nd > MaxDims {
		d.fail("tensor %q has %d dimensions (want 1 to %d)", t.Name, nd, MaxDims)
		return t
	}
	t.Dims = make([]int64, nd)
	for j := range t.Dims {
		v := d.u64("dimension of " + t.Name)
		if v > math.MaxInt64 {
			d.fail("tensor %q dimension %d is %d", t.Name, j, v)
		}
		t.Dims[j] = int64(v)
	}
	t.Type = Type(d.u32("type of " + t.Name))
	t.Offset = int64(d.u64("offset of " + t.Name))
	if d.err != nil {
		return t
	}
	if !t.Type.Valid() {
		d.fail("tensor %q has unknown ggml type id %d", t.Name, uint32(t.Type))
		return t
	}
	size, err := tensorBytes(t.Type, t.Dims)
	if err != nil {
		d.fail("tensor %q: %v", t.Name, err)
		return t
	}
	t.Size = size
	return t
}

// tensorBytes returns the data size of a tensor, rejecting rows that are
// not whole blocks and element counts that overflow.
func tensorBytes(t Type, dims []int64) (int64, error) {
	bs := int64(t.BlockSize())
	if dims[0]%bs != 0 {
		return 0, fmt.Errorf("row length %d is not a multiple of the %v block size %d", dims[0], t, bs)
	}
	hi, lo := bits.Mul64(uint64(dims[0]/bs), uint64(t.BlockBytes()))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, fmt.Errorf("dimensions %v overflow", dims)
	}
	size := int64(lo)
	for _, n := range dims[1:] {
		hi, lo := bits.Mul64(uint64(size), uint64(n))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("dimensions %v overflow", dims)
		}
		size = int64(lo)
	}
	// The element count must fit as well (ggml_nelements is int64).
	ne := int64(1)
	for _, n := range dims {
		hi, lo := bits.Mul64(uint64(ne), uint64(n))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("dimensions %v overflow", dims)
		}
		ne = int64(lo)
	}
	return size, nil
}

func (h *header) checkTensors(fileSize int64) error {
	dataSize := fileSize - h.dataOffset
	if len(h.tensors) > 0 && dataSize < 0 {
		return fmt.Errorf("%w: truncated: the data section starts at %d but the file has %d bytes", ErrFormat, h.dataOffset, fileSize)
	}
	order := make([]int, len(h.tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return h.tensors[order[a]].Offset < h.tensors[order[b]].Offset })
	var end int64
	var prev string
	for _, i := range order {
		t := &h.tensors[i]
		if t.Offset < 0 || t.Offset%int64(h.alignment) != 0 {
			return fmt.Errorf("%w: tensor %q offset %d is not a multiple of the alignment %d", ErrFormat, t.Name, t.Offset, h.alignment)
		}
		if t.Offset > dataSize || t.Size > dataSize-t.Offset {
			return fmt.Errorf("%w: tensor %q data [%d, +%d) is beyond the data section of %d bytes (file truncated?)",
				ErrFormat, t.Name, t.Offset, t.Size, dataSize)
		}
		if t.Offset < end {
			return fmt.Errorf("%w: tensor %q overlaps tensor %q", ErrFormat, t.Name, prev)
		}
		end, prev = t.Offset+t.Size, t.Name
	}
	return nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }
