package tokenizer

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// peerSource returns the llama.cpp source the peer harness installs, or
// skips the test.
func peerSource(t *testing.T, rel string) string {
	home := os.Getenv("IX_PEER_HOME")
	if home == "" {
		h, _ := os.UserHomeDir()
		home = filepath.Join(h, ".cache", "ix-peer")
	}
	p := filepath.Join(home, "llama.cpp-src", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("needs llama.cpp's source from the peer harness (../shared/peer/setup.sh): %v", err)
	}
	return p
}

// TestUnicodeTableMatchesLlamaCpp compares the flags of every code point
// with llama.cpp's generated table (unicode-data.cpp). It fails when Go's
// Unicode version moves past the one llama.cpp was generated from; then
// unicode151 needs revisiting.
func TestUnicodeTableMatchesLlamaCpp(t *testing.T) {
	f, err := os.Open(peerSource(t, "src/unicode-data.cpp"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type rangeFlags struct {
		start rune
		flags cptFlags
	}
	var ranges []rangeFlags
	whitespace := map[rune]bool{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "unicode_ranges_flags = {"):
			section = "flags"
			continue
		case strings.Contains(line, "unicode_set_whitespace = {"):
			section = "ws"
			continue
		case strings.HasPrefix(line, "}"):
			section = ""
			continue
		}
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == '}' || r == ',' || r == ' ' })
		switch section {
		case "flags":
			a, err1 := strconv.ParseUint(fields[0], 0, 32)
			b, err2 := strconv.ParseUint(fields[1], 0, 16)
			if err1 != nil || err2 != nil {
				t.Fatalf("cannot parse %q", line)
			}
			ranges = append(ranges, rangeFlags{rune(a), cptFlags(b)})
		case "ws":
			a, err := strconv.ParseUint(fields[0], 0, 32)
			if err != nil {
				t.Fatalf("cannot parse %q", line)
			}
			whitespace[rune(a)] = true
		}
	}
	if len(ranges) < 1000 || len(whitespace) == 0 {
		t.Fatalf("parsed %d ranges and %d whitespace code points", len(ranges), len(whitespace))
	}
	tab := loadUnicodeTable()
	bad := 0
	for i := 0; i+1 < len(ranges); i++ {
		for r := ranges[i].start; r < ranges[i+1].start; r++ {
			want := ranges[i].flags
			if whitespace[r] {
				want |= flagWhitespace
			}
			if got := tab.flags(r); got != want {
				if bad++; bad <= 10 {
					t.Errorf("U+%04X: flags %#x, llama.cpp %#x (Go Unicode %s)", r, got, want, unicode.Version)
				}
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d code points differ", bad)
	}
}
