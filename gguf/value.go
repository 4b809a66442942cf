package gguf

import (
	"errors"
	"fmt"
	"math"
)

// ValueType is the type tag of a GGUF metadata value (gguf.h gguf_type).
type ValueType uint32

// GGUF metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
	valueTypeEnd ValueType = 13
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if t < valueTypeEnd {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("gguf_type(%d)", uint32(t))
}

// size returns the encoded size of a scalar of type t, 0 for string/array.
func (t ValueType) size() int {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// Value is one metadata value. Scalars hold the Go type of the same name
// (uint8, int8, ..., float64, bool, string); arrays hold an Array.
type Value struct {
	Type ValueType
	Any  any
}

// Array is a metadata array: Values is a typed slice ([]uint8, []int32,
// []float32, []string, ...) or, for arrays of arrays, []Array.
type Array struct {
	Elem   ValueType
	Values any
}

// Len returns the number of elements.
func (a Array) Len() int {
	switch v := a.Values.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []float32:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float64:
		return len(v)
	case []Array:
		return len(v)
	}
	return 0
}

// KV is one metadata key and its value.
type KV struct {
	Key   string
	Value Value
}

// NewValue wraps a Go value as a metadata value: the scalar types named in
// Value, their slices (arrays), []Array, or an Array.
func NewValue(v any) (Value, error) {
	switch x := v.(type) {
	case uint8:
		return Value{ValueUint8, x}, nil
	case int8:
		return Value{ValueInt8, x}, nil
	case uint16:
		return Value{ValueUint16, x}, nil
	case int16:
		return Value{ValueInt16, x}, nil
	case uint32:
		return Value{ValueUint32, x}, nil
	case int32:
		return Value{ValueInt32, x}, nil
	case float32:
		return Value{ValueFloat32, x}, nil
	case bool:
		return Value{ValueBool, x}, nil
	case string:
		return Value{ValueString, x}, nil
	case uint64:
		return Value{ValueUint64, x}, nil
	case int64:
		return Value{ValueInt64, x}, nil
	case float64:
		return Value{ValueFloat64, x}, nil
	case Array:
		return Value{ValueArray, x}, nil
	}
	et, ok := sliceElemType(v)
	if !ok {
		return Value{}, fmt.Errorf("gguf: cannot store %T as metadata", v)
	}
	return Value{ValueArray, Array{Elem: et, Values: v}}, nil
}

// MustValue is NewValue for values known to be storable; it panics
// otherwise, so use it only with literal Go types.
func MustValue(v any) Value {
	val, err := NewValue(v)
	if err != nil {
		panic(err)
	}
	return val
}

func sliceElemType(v any) (ValueType, bool) {
	switch v.(type) {
	case []uint8:
		return ValueUint8, true
	case []int8:
		return ValueInt8, true
	case []uint16:
		return ValueUint16, true
	case []int16:
		return ValueInt16, true
	case []uint32:
		return ValueUint32, true
	case []int32:
		return ValueInt32, true
	case []float32:
		return ValueFloat32, true
	case []bool:
		return ValueBool, true
	case []string:
		return ValueString, true
	case []uint64:
		return ValueUint64, true
	case []int64:
		return ValueInt64, true
	case []float64:
		return ValueFloat64, true
	case []Array:
		return ValueArray, true
	}
	return 0, false
}

// ErrKeyNotFound is returned (wrapped) by the typed accessors for a key the
// file does not have.
var ErrKeyNotFound = errors.New("gguf: key not found")

// TypeError is returned by the typed accessors when a key holds a value of
// another type than the one asked for.
type TypeError struct {
	Key  string
	Got  string // the type the file stores, e.g. "string" or "array of int32"
	Want string // the type asked for
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("gguf: key %q holds %s, want %s", e.Key, e.Got, e.Want)
}

func (v Value) typeName() string {
	if v.Type == ValueArray {
		if a, ok := v.Any.(Array); ok {
			return "array of " + a.Elem.String()
		}
	}
	return v.Type.String()
}

// asInt64 converts an integer value to int64; ok is false for non-integers
// and for uint64 values beyond the int64 range.
func (v Value) asInt64() (int64, bool) {
	switch x := v.Any.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// String formats a value for display; long arrays are summarised.
func (v Value) String() string {
	if a, ok := v.Any.(Array); ok {
		return formatArray(a, 8)
	}
	if s, ok := v.Any.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v.Any)
}

func formatArray(a Array, limit int) string {
	n := a.Len()
	s := fmt.Sprintf("[%s x %d]", a.Elem, n)
	show := min(n, limit)
	if show == 0 {
		return s
	}
	s += " ["
	for i := 0; i < show; i++ {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(indexArray(a, i))
	}
	if show < n {
		s += ", ..."
	}
	return s + "]"
}

func indexArray(a Array, i int) any {
	switch v := a.Values.(type) {
	case []uint8:
		return v[i]
	case []int8:
		return v[i]
	case []uint16:
		return v[i]
	case []int16:
		return v[i]
	case []uint32:
		return v[i]
	case []int32:
		return v[i]
	case []float32:
		return v[i]
	case []bool:
		return v[i]
	case []string:
		return fmt.Sprintf("%q", v[i])
	case []uint64:
		return v[i]
	case []int64:
		return v[i]
	case []float64:
		return v[i]
	case []Array:
		return formatArray(v[i], 4)
	}
	return nil
}
