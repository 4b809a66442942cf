// Package ggqv reads the GGQV v1 quantization test vectors that ggml
// produced (../shared/testdata/quants, format in that folder's README).
package ggqv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// File flags.
const (
	FlagRequiresImatrix = 0x01
	FlagQuantViaChunk   = 0x02
	FlagHasDequant      = 0x04
	FlagDequantSymbol   = 0x08
	FlagHasQuantCPU     = 0x10
	FlagHasVecDot       = 0x20
	FlagImatrixIgnored  = 0x40
	FlagUndefBytes      = 0x80
)

// Case flags.
const (
	CaseHasImatrix  = 0x1
	CaseImatrixOnes = 0x2
	CaseUndefBytes  = 0x4
)

// File is one parsed .ggqv file.
type File struct {
	TypeID      uint32
	BlockSize   int
	TypeSize    int
	Flags       uint32
	VecDotType  int32 // -1 when none
	VecDotBlock int
	VecDotSize  int
	Name        string
	SIMDVariant string
	GGMLVersion string
	Cases       []Case
}

// Case is one matrix of test rows and everything ggml derived from it.
type Case struct {
	Name       string
	Rows       int
	PerRow     int
	RowSize    int
	ActRowSize int
	Flags      uint32
	UndefBytes int

	Src      []float32 // Rows*PerRow
	Imatrix  []float32 // PerRow, or nil
	Quant    []byte    // Rows*RowSize
	Dequant  []float32 // Rows*PerRow, or nil
	QuantCPU []byte    // or nil
	Act      []float32 // PerRow, or nil
	ActSIMD  []byte
	ActX64   []byte
	ActRef   []byte
	DotSIMD  []float32 // Rows
	DotX64   []float32 // Rows
}

// Dir returns the quants test-vector folder relative to the repository
// root (../shared/testdata/quants), found from the working directory
// upwards, or "" when it is absent.
func Dir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "..", "shared", "testdata", "quants")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Read parses the file at path.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

var errShort = errors.New("ggqv: truncated")

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		r.err = errShort
		return make([]byte, max(n, 0))
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }

func (r *reader) str(n int) string { return strings.TrimRight(string(r.take(n)), "\x00") }

func (r *reader) pad() { r.off += (4 - r.off%4) % 4 }

func (r *reader) bytes(n int) []byte {
	p := append([]byte(nil), r.take(n)...)
	r.pad()
	return p
}

func (r *reader) floats(n int) []float32 {
	p := r.take(4 * n)
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	r.pad()
	return out
}

// Parse parses a whole .ggqv file.
func Parse(b []byte) (*File, error) {
	r := &reader{b: b}
	if string(r.take(4)) != "GGQV" {
		return nil, errors.New("ggqv: bad magic")
	}
	if v := r.u32(); v != 1 {
		return nil, fmt.Errorf("ggqv: version %d", v)
	}
	f := &File{}
	f.TypeID = r.u32()
	f.BlockSize = int(r.u32())
	f.TypeSize = int(r.u32())
	f.Flags = r.u32()
	f.VecDotType = int32(r.u32())
	f.VecDotBlock = int(r.u32())
	f.VecDotSize = int(r.u32())
	n := int(r.u32())
	f.Name = r.str(24)
	f.SIMDVariant = r.str(32)
	f.GGMLVersion = r.str(32)
	for i := 0; i < n && r.err == nil; i++ {
		var c Case
		c.Name = r.str(32)
		c.Rows = int(r.u32())
		c.PerRow = int(r.u32())
		c.RowSize = int(r.u32())
		c.ActRowSize = int(r.u32())
		c.Flags = r.u32()
		c.UndefBytes = int(r.u32())
		r.take(8)
		c.Src = r.floats(c.Rows * c.PerRow)
		if c.Flags&CaseHasImatrix != 0 {
			c.Imatrix = r.floats(c.PerRow)
		}
		c.Quant = r.bytes(c.Rows * c.RowSize)
		if f.Flags&FlagHasDequant != 0 {
			c.Dequant = r.floats(c.Rows * c.PerRow)
		}
		if f.Flags&FlagHasQuantCPU != 0 {
			c.QuantCPU = r.bytes(c.Rows * c.RowSize)
		}
		if f.Flags&FlagHasVecDot != 0 {
			c.Act = r.floats(c.PerRow)
			c.ActSIMD = r.bytes(c.ActRowSize)
			c.ActX64 = r.bytes(c.ActRowSize)
			c.ActRef = r.bytes(c.ActRowSize)
			c.DotSIMD = r.floats(c.Rows)
			c.DotX64 = r.floats(c.Rows)
		}
		f.Cases = append(f.Cases, c)
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("ggqv: %d trailing bytes", len(b)-r.off)
	}
	return f, nil
}
