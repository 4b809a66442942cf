package gguf

import (
	"fmt"
	"strings"
)

// Type is a ggml tensor element type id, as stored in a GGUF tensor info.
// The numbering is ggml's enum ggml_type (ggml/include/ggml.h); ids that
// ggml removed or deprecated are kept as gaps so the numbers stay stable.
type Type uint32

// The ggml type ids. Names follow ggml's type_name strings, upper-cased.
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
	TypeTQ1_0   Type = 34
	TypeTQ2_0   Type = 35
	TypeMXFP4   Type = 39
	TypeNVFP4   Type = 40
	TypeQ1_0    Type = 41
	TypeQ2_0    Type = 42

	// TypeCount is one past the largest type id this build knows.
	TypeCount Type = 43
)

// TypeTraits is the storage layout of one ggml type: a tensor row of n
// elements takes n/BlockSize blocks of BlockBytes bytes each.
type TypeTraits struct {
	Name       string // ggml's type name, upper-cased: "Q4_K", "F16", ...
	BlockSize  int    // elements per block (1 for plain scalar types)
	BlockBytes int    // bytes per block
	Quantized  bool   // block-quantized (as opposed to a plain scalar type)
}

// typeTable is the one table of ggml type layouts; kernels/ builds on it.
// Source: ggml/src/ggml.c type_traits and ggml-common.h block structs, as
// read back from ggml 0.23.0 in ../shared/testdata/quants/types.tsv.
var typeTable = [TypeCount]TypeTraits{
	TypeF32:     {"F32", 1, 4, false},
	TypeF16:     {"F16", 1, 2, false},
	TypeQ4_0:    {"Q4_0", 32, 18, true},
	TypeQ4_1:    {"Q4_1", 32, 20, true},
	TypeQ5_0:    {"Q5_0", 32, 22, true},
	TypeQ5_1:    {"Q5_1", 32, 24, true},
	TypeQ8_0:    {"Q8_0", 32, 34, true},
	TypeQ8_1:    {"Q8_1", 32, 36, true},
	TypeQ2_K:    {"Q2_K", 256, 84, true},
	TypeQ3_K:    {"Q3_K", 256, 110, true},
	TypeQ4_K:    {"Q4_K", 256, 144, true},
	TypeQ5_K:    {"Q5_K", 256, 176, true},
	TypeQ6_K:    {"Q6_K", 256, 210, true},
	TypeQ8_K:    {"Q8_K", 256, 292, true},
	TypeIQ2_XXS: {"IQ2_XXS", 256, 66, true},
	TypeIQ2_XS:  {"IQ2_XS", 256, 74, true},
	TypeIQ3_XXS: {"IQ3_XXS", 256, 98, true},
	TypeIQ1_S:   {"IQ1_S", 256, 50, true},
	TypeIQ4_NL:  {"IQ4_NL", 32, 18, true},
	TypeIQ3_S:   {"IQ3_S", 256, 110, true},
	TypeIQ2_S:   {"IQ2_S", 256, 82, true},
	TypeIQ4_XS:  {"IQ4_XS", 256, 136, true},
	TypeI8:      {"I8", 1, 1, false},
	TypeI16:     {"I16", 1, 2, false},
	TypeI32:     {"I32", 1, 4, false},
	TypeI64:     {"I64", 1, 8, false},
	TypeF64:     {"F64", 1, 8, false},
	TypeIQ1_M:   {"IQ1_M", 256, 56, true},
	TypeBF16:    {"BF16", 1, 2, false},
	TypeTQ1_0:   {"TQ1_0", 256, 54, true},
	TypeTQ2_0:   {"TQ2_0", 256, 66, true},
	TypeMXFP4:   {"MXFP4", 32, 17, true},
	TypeNVFP4:   {"NVFP4", 64, 36, true},
	TypeQ1_0:    {"Q1_0", 128, 18, true},
	TypeQ2_0:    {"Q2_0", 64, 18, true},
}

// Valid reports whether t is a type id this build can size.
func (t Type) Valid() bool { return t < TypeCount && typeTable[t].BlockSize > 0 }

// Traits returns the layout of t. For an invalid id it returns the zero
// TypeTraits (BlockSize 0); check Valid first.
func (t Type) Traits() TypeTraits {
	if t >= TypeCount {
		return TypeTraits{}
	}
	return typeTable[t]
}

// BlockSize returns the number of elements per block (0 for invalid ids).
func (t Type) BlockSize() int { return t.Traits().BlockSize }

// BlockBytes returns the number of bytes per block (0 for invalid ids).
func (t Type) BlockBytes() int { return t.Traits().BlockBytes }

// String returns ggml's name for t, or "type(N)" for an unknown id.
func (t Type) String() string {
	if t.Valid() {
		return typeTable[t].Name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// RowBytes returns the bytes a row of n elements takes, or an error when n
// is not a whole number of blocks or t is unknown.
func (t Type) RowBytes(n int) (int, error) {
	if !t.Valid() {
		return 0, fmt.Errorf("%w: unknown ggml type id %d", ErrFormat, uint32(t))
	}
	tr := typeTable[t]
	if n < 0 || n%tr.BlockSize != 0 {
		return 0, fmt.Errorf("%w: row of %d elements is not a whole number of %s blocks of %d",
			ErrFormat, n, tr.Name, tr.BlockSize)
	}
	return n / tr.BlockSize * tr.BlockBytes, nil
}

// ParseType returns the type named name (case-insensitive, e.g. "q4_k").
func ParseType(name string) (Type, error) {
	for i := range typeTable {
		if typeTable[i].BlockSize > 0 && strings.EqualFold(typeTable[i].Name, name) {
			return Type(i), nil
		}
	}
	return 0, fmt.Errorf("unknown ggml type %q", name)
}

// Types returns every valid type id in ascending order.
func Types() []Type {
	var out []Type
	for i := range typeTable {
		if typeTable[i].BlockSize > 0 {
			out = append(out, Type(i))
		}
	}
	return out
}
