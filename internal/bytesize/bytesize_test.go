package bytesize

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		// Kubernetes binary SI: the example and the manifests' resources.
		{"28Gi", 28 << 30}, {"12Gi", 12 << 30}, {"32Gi", 32 << 30}, {"128Gi", 128 << 30}, {"2Gi", 2 << 30},
		{"512Mi", 512 << 20}, {"64Ki", 64 << 10}, {"2Ti", 2 << 40}, {"1Pi", 1 << 50}, {"1Ei", 1 << 60},
		{"1.5Gi", 3 << 29},
		// Kubernetes decimal SI: G and M are powers of 1000, as Kubernetes has them.
		{"2G", 2e9}, {"500M", 500e6}, {"800M", 800e6}, {"12G", 12e9}, {"1k", 1000}, {"1K", 1000},
		{"3T", 3e12}, {"1P", 1e15}, {"1E", 1e18}, {"1.5G", 1.5e9},
		// Exponent forms.
		{"1e9", 1e9}, {"1E3", 1000}, {"5e+2", 500},
		// Today's spellings with a B, in any case (README, manifests' --capacity).
		{"12GiB", 12 << 30}, {"340GiB", 340 << 30}, {"28GiB", 28 << 30}, {"48GiB", 48 << 30}, {"4GiB", 4 << 30},
		{"800MiB", 800 << 20}, {"64KiB", 64 << 10}, {"1.5GiB", 3 << 29}, {"10 KiB", 10240}, {"12gib", 12 << 30},
		{"1.5GB", 1.5e9}, {"800MB", 800e6}, {"2tb", 2e12}, {"1kb", 1000}, {"7B", 7}, {"7b", 7},
		// Plain byte counts.
		{"0", 0}, {"4096", 4096}, {" 100 ", 100},
		// Fractions of a byte round up, as Kubernetes rounds bytes.
		{"0.5", 1}, {"1.1Ki", 1127},
		// The largest int64.
		{"9223372036854775807", 1<<63 - 1},
	} {
		if got, err := Parse(tc.in); err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"", "want a number"}, {"GiB", "want a number"}, {"-1G", "negative"}, {"-1", "negative"},
		{"1.2.3M", "not a number"}, {"5 parsecs", `unknown unit "parsecs"`}, {"1e400", "too large"},
		{"8Ei", "too large"}, {"9223372036854775808", "too large"}, {"NaN", "want a number"},
		{"800m", "milli"}, {"12g", `unknown unit "g"`}, {"12gi", `unknown unit "gi"`}, {"12iB", "unknown unit"},
		{"12Gi9", "not a number"}, {"1e3Ki", "not a number"},
	} {
		_, err := Parse(tc.in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Parse(%q): error %v, want one saying %q", tc.in, err, tc.says)
		}
	}
	if _, err := Parse("5 parsecs"); !strings.Contains(err.Error(), "28Gi") {
		t.Errorf("the error shows no valid example: %v", err)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB", -2048: "-2.0 KiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFlag(t *testing.T) {
	var n int
	f := NewFlag(&n, 64<<20)
	if f.String() != "64Mi" || f.Type() != "size" {
		t.Errorf("default %q %q", f.String(), f.Type())
	}
	for in, want := range map[string]int{"4Mi": 4 << 20, "1G": 1e9, "12GiB": 12 << 30, "100": 100} {
		if err := f.Set(in); err != nil || n != want {
			t.Errorf("Set(%q): %d, %v; want %d", in, n, err, want)
		}
		if err := f.Set(f.String()); err != nil || n != want {
			t.Errorf("Set(String()) after %q: %d, %v", in, n, err)
		}
	}
	if err := f.Set("lots"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Set(lots): %v", err)
	}
	for n, want := range map[int64]string{0: "0", 1000: "1000", 1536: "1536", 1 << 10: "1Ki", 3 << 29: "1536Mi", 1 << 62: "4Ei", -2048: "-2Ki"} {
		if got := Exact(n); got != want {
			t.Errorf("Exact(%d) = %q, want %q", n, got, want)
		}
	}
}
