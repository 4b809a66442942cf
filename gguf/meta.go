package gguf

import (
	"fmt"
	"math"
)

// Value returns the metadata value stored under key.
func (f *File) Value(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// Has reports whether key is present.
func (f *File) Has(key string) bool { _, ok := f.kvIndex[key]; return ok }

func (f *File) get(key string) (Value, error) {
	v, ok := f.Value(key)
	if !ok {
		return Value{}, fmt.Errorf("%w: %q", ErrKeyNotFound, key)
	}
	return v, nil
}

// String returns the string stored under key.
func (f *File) String(key string) (string, error) {
	v, err := f.get(key)
	if err != nil {
		return "", err
	}
	s, ok := v.Any.(string)
	if !ok {
		return "", &TypeError{key, v.typeName(), "string"}
	}
	return s, nil
}

// Int returns the integer stored under key, whatever its integer width.
func (f *File) Int(key string) (int64, error) {
	v, err := f.get(key)
	if err != nil {
		return 0, err
	}
	n, ok := v.asInt64()
	if !ok {
		return 0, &TypeError{key, v.typeName(), "integer"}
	}
	return n, nil
}

// Uint32 returns the integer under key if it fits in a uint32.
func (f *File) Uint32(key string) (uint32, error) {
	n, err := f.Int(key)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > math.MaxUint32 {
		return 0, fmt.Errorf("gguf: key %q = %d does not fit in uint32", key, n)
	}
	return uint32(n), nil
}

// Float returns the float stored under key (float32 or float64).
func (f *File) Float(key string) (float64, error) {
	v, err := f.get(key)
	if err != nil {
		return 0, err
	}
	switch x := v.Any.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, &TypeError{key, v.typeName(), "float"}
}

// Bool returns the bool stored under key.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.get(key)
	if err != nil {
		return false, err
	}
	b, ok := v.Any.(bool)
	if !ok {
		return false, &TypeError{key, v.typeName(), "bool"}
	}
	return b, nil
}

// Array returns the array stored under key.
func (f *File) Array(key string) (Array, error) {
	v, err := f.get(key)
	if err != nil {
		return Array{}, err
	}
	a, ok := v.Any.(Array)
	if !ok {
		return Array{}, &TypeError{key, v.typeName(), "array"}
	}
	return a, nil
}

// Strings returns the array of strings stored under key.
func (f *File) Strings(key string) ([]string, error) {
	return arrayOf[string](f, key, "array of string")
}

// Float32s returns the array of float32 stored under key.
func (f *File) Float32s(key string) ([]float32, error) {
	return arrayOf[float32](f, key, "array of float32")
}

// Int32s returns the array of int32 stored under key.
func (f *File) Int32s(key string) ([]int32, error) { return arrayOf[int32](f, key, "array of int32") }

// Ints returns an array of any integer type under key, widened to int64.
func (f *File) Ints(key string) ([]int64, error) {
	a, err := f.Array(key)
	if err != nil {
		return nil, err
	}
	out := make([]int64, a.Len())
	for i := range out {
		n, ok := Value{a.Elem, indexArrayRaw(a, i)}.asInt64()
		if !ok {
			return nil, &TypeError{key, "array of " + a.Elem.String(), "array of integers"}
		}
		out[i] = n
	}
	return out, nil
}

func arrayOf[T any](f *File, key, want string) ([]T, error) {
	a, err := f.Array(key)
	if err != nil {
		return nil, err
	}
	s, ok := a.Values.([]T)
	if !ok {
		return nil, &TypeError{key, "array of " + a.Elem.String(), want}
	}
	return s, nil
}

func indexArrayRaw(a Array, i int) any {
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
	case []uint64:
		return v[i]
	case []int64:
		return v[i]
	}
	return nil
}

// Architecture returns general.architecture.
func (f *File) Architecture() (string, error) { return f.String(KeyArchitecture) }
