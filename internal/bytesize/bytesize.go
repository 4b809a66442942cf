// Package bytesize parses and prints byte counts for flags and reports.
//
// Parse is the one size parser of every binary: it reads Kubernetes
// quantities ("28Gi", "512Mi", "2G", "500M", "1e9"), as the manifests
// write memory requests, and the spellings with a B ("12GiB", "800MB").
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid size")

// Examples is what error messages and help texts show as valid sizes.
const Examples = "28Gi, 512Mi, 64Ki (binary), 2G, 500M (decimal), 12GiB, 800MB or a byte count"

// suffixes maps the units Parse accepts, as written, to the suffix
// Kubernetes spells them with. Units ending in B are matched
// case-insensitively (upper-cased first); the others as written, as
// Kubernetes does, except that K is accepted as kilo beside k.
var suffixes = map[string]string{
	"": "", "B": "",
	"Ki": "Ki", "Mi": "Mi", "Gi": "Gi", "Ti": "Ti", "Pi": "Pi", "Ei": "Ei",
	"k": "k", "K": "k", "M": "M", "G": "G", "T": "T", "P": "P", "E": "E",
	"KIB": "Ki", "MIB": "Mi", "GIB": "Gi", "TIB": "Ti", "PIB": "Pi", "EIB": "Ei",
	"KB": "k", "MB": "M", "GB": "G", "TB": "T", "PB": "P", "EB": "E",
}

// maxBytes is the largest size an int64 holds.
var maxBytes = *resource.NewQuantity(math.MaxInt64, resource.BinarySI)

// Parse parses a size in bytes: a number (integer, decimal fraction or
// exponent form such as 1e9) with an optional unit.
//
//   - Ki, Mi, Gi, Ti, Pi, Ei are powers of 1024 (Kubernetes' binary SI);
//   - k (or K), M, G, T, P, E are powers of 1000 (Kubernetes' decimal SI);
//   - KiB..EiB and KB..EB mean the same, in any case ("12gib", "2tb"); B is bytes.
//
// So "2G" is 2,000,000,000 bytes and "2Gi" 2,147,483,648. A fraction of a
// byte rounds up, as Kubernetes rounds quantities it reads as bytes.
// Milli ("m") and the other units below one, negative sizes and sizes past
// 2^63-1 bytes are refused; errors wrap ErrInvalid.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("%w %q: want a number with an optional unit (e.g. %s)", ErrInvalid, s, Examples)
	}
	suffix, ok := suffixes[unit]
	if !ok {
		suffix, ok = suffixes[strings.ToUpper(unit)]
		ok = ok && strings.HasSuffix(strings.ToUpper(unit), "B")
	}
	switch {
	case ok:
	case unit == "m":
		return 0, fmt.Errorf("%w %q: m is milli (1/1000) in Kubernetes; write M (10^6 bytes) or Mi (2^20)", ErrInvalid, s)
	default:
		return 0, fmt.Errorf("%w %q: unknown unit %q (want e.g. %s)", ErrInvalid, s, unit, Examples)
	}
	q, err := resource.ParseQuantity(num + suffix)
	if err != nil {
		return 0, fmt.Errorf("%w %q: not a number with a unit (e.g. %s)", ErrInvalid, s, Examples)
	}
	switch {
	case q.Sign() < 0:
		return 0, fmt.Errorf("%w %q: negative", ErrInvalid, s)
	case q.Cmp(maxBytes) > 0, q.Cmp(maxBytes) == 0 && strings.HasSuffix(suffix, "i"):
		// ParseQuantity clamps a binary overflow (8Ei) to the largest
		// int64, which no whole number of Ki..Ei equals.
		return 0, fmt.Errorf("%w %q: too large (the largest size is 2^63-1 bytes)", ErrInvalid, s)
	}
	return q.Value(), nil
}

// Format prints n in binary units with one decimal ("1.5 GiB").
func Format(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for math.Abs(v) >= unit && u < 6 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[u-1])
}
