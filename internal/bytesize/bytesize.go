// Package bytesize parses and prints byte counts for flags and reports
// ("12GiB", "800M", "1.5GB").
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var units = map[string]float64{"": 1, "B": 1,
	"K": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TIB": 1 << 40,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}

// Parse parses a number with an optional unit: B, K, M, G, T and KiB,
// MiB, GiB, TiB are powers of 1024; KB, MB, GB, TB powers of 1000.
// Units are case-insensitive.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a size (e.g. 12GiB, 800M, 1.5GB)", s)
	}
	m, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (B, K, M, G, T, KiB..TiB, KB..TB)", s, t[i:])
	}
	if v*m >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v * m), nil
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
