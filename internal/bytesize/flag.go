package bytesize

import (
	"fmt"
	"math"
	"strconv"
)

// Flag is a flag.Value and pflag.Value for a size flag held in an int or
// int64: it takes every spelling Parse does, so a bad size is a usage
// error naming the flag.
type Flag[T ~int | ~int64] struct{ p *T }

// NewFlag returns a Flag storing into p, which it sets to def.
func NewFlag[T ~int | ~int64](p *T, def T) *Flag[T] {
	*p = def
	return &Flag[T]{p}
}

// Set parses s.
func (f *Flag[T]) Set(s string) error {
	n, err := Parse(s)
	if err != nil {
		return err
	}
	if T(n) < 0 || int64(T(n)) != n {
		return fmt.Errorf("%w %q: too large", ErrInvalid, s)
	}
	*f.p = T(n)
	return nil
}

// String prints the value so that Set reads it back: in Gi, Mi or Ki
// when it is a whole number of them, else in bytes.
func (f *Flag[T]) String() string {
	if f == nil || f.p == nil {
		return "0"
	}
	return Exact(int64(*f.p))
}

// Type is the value's name in help texts.
func (f *Flag[T]) Type() string { return "size" }

// Exact prints n as the largest binary unit it is a whole number of
// ("64Mi", "1536Ki", "1000"), a spelling Parse reads back exactly.
func Exact(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"Ei", 60}, {"Pi", 50}, {"Ti", 40}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}} {
		if n != 0 && n != math.MinInt64 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
