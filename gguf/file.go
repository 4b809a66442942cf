package gguf

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Well-known metadata keys.
const (
	KeyAlignment    = "general.alignment"
	KeyArchitecture = "general.architecture"
	KeySplitNo      = "split.no"
	KeySplitCount   = "split.count"
	KeySplitTensors = "split.tensors.count"
)

// Tensor is one tensor of a GGUF file. Data is a zero-copy view into the
// read-only mapping of the file that holds it; it stays valid until the
// File is closed and must never be written.
type Tensor struct {
	Name   string
	Type   Type
	Dims   []int64 // ggml's ne: Dims[0] is the row length (fastest varying)
	Offset int64   // relative to the data section of its file
	Size   int64   // bytes of data
	Split  int     // index of the split file holding the data (0 if not split)
	Data   []byte
}

// Elements returns the number of elements.
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Rows returns the number of rows (all dimensions but the first).
func (t *Tensor) Rows() int64 { return t.Elements() / max(t.Dims[0], 1) }

// RowBytes returns the bytes of one row.
func (t *Tensor) RowBytes() int { return int(t.Dims[0]) / t.Type.BlockSize() * t.Type.BlockBytes() }

// Shape formats the dimensions as llama.cpp prints them, e.g. "[4096, 32000]".
func (t *Tensor) Shape() string {
	s := make([]string, len(t.Dims))
	for i, d := range t.Dims {
		s[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// mapping is one memory-mapped file.
type mapping struct {
	path string
	data []byte
	hdr  *header
	id   Identity // what the file was when mapped
}

// File is an open GGUF model: one file, or every part of a split model
// opened as one. Metadata comes from the first part; tensors from all
// parts. Methods are safe for concurrent use; Close must not race them.
type File struct {
	// Version is the GGUF version of the (first) file: 2 or 3.
	Version uint32
	// KV is the metadata in file order.
	KV []KV
	// Tensors in file order (across splits: part by part).
	Tensors []Tensor
	// Alignment of the tensor data (general.alignment or 32).
	Alignment int

	parts   []mapping
	kvIndex map[string]int
	tIndex  map[string]int
	faulted atomic.Bool // a read of the mapping faulted (CatchFault)
}

// Open memory-maps the GGUF file at path (read-only, shared) and parses
// its header. A file named NAME-00001-of-0000N.gguf with split.count N
// opens all N parts from the same folder. Anything but a regular file (a
// named pipe, a device, a directory) is refused without reading it.
//
// Truncating or rewriting a mapped file in place makes reads of its
// mapping fault: goroutines that read tensor data recover that as an
// error wrapping ErrFileChanged with CatchFault, and Check reports it.
func Open(path string) (*File, error) {
	first, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f := &File{parts: []mapping{first}}
	f.Version = first.hdr.version
	f.KV = first.hdr.kvs
	f.Alignment = first.hdr.alignment
	f.index()
	if err := f.openSplits(path); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.collectTensors(); err != nil {
		f.Close()
		return nil, err
	}
	register(f)
	return f, nil
}

// Parse parses GGUF bytes already in memory (no mapping; Close is a no-op
// for them). Tensor Data views alias b.
func Parse(b []byte) (*File, error) {
	h, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	f := &File{Version: h.version, KV: h.kvs, Alignment: h.alignment,
		parts: []mapping{{data: b, hdr: h}}}
	f.index()
	if err := f.collectTensors(); err != nil {
		return nil, err
	}
	return f, nil
}

func mapFile(path string) (m mapping, err error) {
	// Stat before opening, and open non-blocking: opening a named pipe for
	// reading would wait for a writer.
	if st, err := os.Stat(path); err != nil {
		return m, err
	} else if err := regular(path, st); err != nil {
		return m, err
	}
	fd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return m, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return m, err
	}
	if err := regular(path, st); err != nil {
		return m, err
	}
	if st.Size() < 8 {
		return m, fmt.Errorf("%s: %w: truncated: %d bytes", path, ErrFormat, st.Size())
	}
	if st.Size() > math.MaxInt {
		return m, fmt.Errorf("%s: too large to map", path)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return m, fmt.Errorf("%s: mmap: %w", path, err)
	}
	h, err := decodeHeader(data)
	if err != nil {
		unix.Munmap(data)
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return mapping{path: path, data: data, hdr: h, id: identityOf(path, st)}, nil
}

// regular refuses anything but a regular file, saying what it is.
func regular(path string, st fs.FileInfo) error {
	mode := st.Mode()
	var kind string
	switch {
	case mode.IsRegular():
		return nil
	case mode.IsDir():
		kind = "a directory"
	case mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	case mode&fs.ModeCharDevice != 0:
		kind = "a character device"
	case mode&fs.ModeDevice != 0:
		kind = "a block device"
	default:
		kind = "not a regular file (" + mode.Type().String() + ")"
		return fmt.Errorf("%s is %s", path, kind)
	}
	return fmt.Errorf("%s is %s, not a regular file", path, kind)
}

var splitName = regexp.MustCompile(`^(.*)-(\d{5})-of-(\d{5})\.gguf$`)

// SplitPath returns the path of part i (0-based) of n of a split model
// whose prefix is prefix, as llama.cpp names them.
func SplitPath(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, i+1, n)
}

func (f *File) openSplits(path string) error {
	v, ok := f.Value(KeySplitCount)
	if !ok {
		return nil
	}
	n64, ok := v.asInt64()
	if !ok || n64 < 1 || n64 > 99999 {
		return fmt.Errorf("%s: %w: %s = %v", path, ErrFormat, KeySplitCount, v)
	}
	n := int(n64)
	if n == 1 {
		return nil
	}
	if no, err := f.Int(KeySplitNo); err != nil || no != 0 {
		return fmt.Errorf("%s: is part %d of a split model; open the first part", path, no+1)
	}
	m := splitName.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return fmt.Errorf("%s: split model (split.count %d) but the name is not PREFIX-00001-of-%05d.gguf", path, n, n)
	}
	prefix := filepath.Join(filepath.Dir(path), m[1])
	for i := 1; i < n; i++ {
		p, err := mapFile(SplitPath(prefix, i, n))
		if err != nil {
			return fmt.Errorf("split part %d of %d: %w", i+1, n, err)
		}
		f.parts = append(f.parts, p)
		pf := &File{KV: p.hdr.kvs}
		pf.index()
		if no, err := pf.Int(KeySplitNo); err != nil || no != int64(i) {
			return fmt.Errorf("%s: %w: split.no is %d, want %d", p.path, ErrFormat, no, i)
		}
	}
	return nil
}

func (f *File) index() {
	f.kvIndex = make(map[string]int, len(f.KV))
	for i, kv := range f.KV {
		f.kvIndex[kv.Key] = i
	}
}

func (f *File) collectTensors() error {
	f.tIndex = make(map[string]int)
	for pi, p := range f.parts {
		for _, t := range p.hdr.tensors {
			if _, dup := f.tIndex[t.Name]; dup {
				return fmt.Errorf("%s: %w: tensor %q is also in an earlier split part", p.path, ErrFormat, t.Name)
			}
			start := p.hdr.dataOffset + t.Offset
			t.Data = p.data[start : start+t.Size : start+t.Size]
			t.Split = pi
			f.tIndex[t.Name] = len(f.Tensors)
			f.Tensors = append(f.Tensors, t)
		}
	}
	if len(f.parts) > 1 {
		if n, err := f.Int(KeySplitTensors); err == nil && n != int64(len(f.Tensors)) {
			return fmt.Errorf("%w: %s is %d but the %d parts hold %d tensors", ErrFormat, KeySplitTensors, n, len(f.parts), len(f.Tensors))
		}
	}
	return nil
}

// Close unmaps the file(s). Tensor data views are invalid afterwards.
func (f *File) Close() error {
	unregister(f)
	var errs []error
	for _, p := range f.parts {
		if p.path != "" && p.data != nil {
			errs = append(errs, unix.Munmap(p.data))
		}
	}
	f.parts = nil
	return errors.Join(errs...)
}

// Paths returns the file paths of every part.
func (f *File) Paths() []string {
	out := make([]string, len(f.parts))
	for i, p := range f.parts {
		out[i] = p.path
	}
	return out
}

// DataOffset returns where the data section of part i starts.
func (f *File) DataOffset(part int) int64 { return f.parts[part].hdr.dataOffset }

// FileSize returns the size in bytes of part i.
func (f *File) FileSize(part int) int64 { return int64(len(f.parts[part].data)) }

// Parts returns the number of files the model is made of.
func (f *File) Parts() int { return len(f.parts) }

// Tensor returns the tensor named name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	i, ok := f.tIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// Advice is a madvise(2) hint for a range of tensor data.
type Advice int

// Advice values.
const (
	AdviseNormal   Advice = unix.MADV_NORMAL
	AdviseRandom   Advice = unix.MADV_RANDOM
	AdviseWillNeed Advice = unix.MADV_WILLNEED
	AdviseDontNeed Advice = unix.MADV_DONTNEED
	AdvisePageOut  Advice = unix.MADV_PAGEOUT
	AdviseCold     Advice = unix.MADV_COLD
)

// Advise passes advice to the kernel for the pages holding data, which
// must be a sub-slice of a tensor's Data from this file. The range is
// widened to whole pages.
func (f *File) Advise(data []byte, advice Advice) error {
	if len(data) == 0 {
		return nil
	}
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	for _, p := range f.parts {
		if p.path == "" || len(p.data) == 0 {
			continue
		}
		base := uintptr(unsafe.Pointer(unsafe.SliceData(p.data)))
		if addr < base || addr+uintptr(len(data)) > base+uintptr(len(p.data)) {
			continue
		}
		// madvise wants a page-aligned start; the kernel rounds the length up.
		start := (addr - base) &^ uintptr(os.Getpagesize()-1)
		end := addr - base + uintptr(len(data))
		if err := unix.Madvise(p.data[start:end], int(advice)); err != nil {
			return fmt.Errorf("madvise %s: %w", p.path, err)
		}
		return nil
	}
	return errors.New("gguf: Advise: range is not inside a mapping of this file")
}
