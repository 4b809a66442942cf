// Package testenv finds the data that tests share with the rest of the
// team: the ../shared folder beside the repository (llama.cpp reference
// logits, ggml test vectors, real models) and the llama.cpp peer harness.
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// SharedDir returns the absolute path of ../shared relative to the
// repository root (found by walking up from the working directory to the
// folder holding go.mod), or "" when it is not there.
func SharedDir() string {
	if d := os.Getenv("IX_SHARED"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, "..", "shared")
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				abs, _ := filepath.Abs(p)
				return abs
			}
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Shared returns the path of rel inside ../shared, skipping the test with a
// message saying what is missing when it is absent.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	d := SharedDir()
	if d == "" {
		t.Skipf("../shared not found beside the repository: this test needs ../shared/%s", rel)
	}
	p := filepath.Join(d, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("this test needs ../shared/%s: %v", rel, err)
	}
	return p
}
