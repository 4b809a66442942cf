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

// PeerHome returns where ../shared/peer/setup.sh installs llama.cpp:
// $IX_PEER_HOME, or ~/.cache/ix-peer.
func PeerHome() string {
	if home := os.Getenv("IX_PEER_HOME"); home != "" {
		return home
	}
	h, _ := os.UserHomeDir()
	return filepath.Join(h, ".cache", "ix-peer")
}

// LlamarefPath returns the llama.cpp peer driver ($LLAMAREF, or
// PeerHome()/bin/llamaref), or "" when it is not installed.
func LlamarefPath() string {
	p := os.Getenv("LLAMAREF")
	if p == "" {
		p = filepath.Join(PeerHome(), "bin", "llamaref")
	}
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Llamaref returns the llama.cpp peer driver, skipping the test with a
// message saying how to install it when it is absent.
func Llamaref(t testing.TB) string {
	t.Helper()
	p := LlamarefPath()
	if p == "" {
		t.Skipf("llama.cpp peer not installed in %s (bash ../shared/peer/setup.sh installs it; LLAMAREF overrides the path): skipping the comparison with llama.cpp", PeerHome())
	}
	return p
}

// PeerSource returns the path of rel in the llama.cpp source the peer
// harness unpacks, skipping the test when it is absent.
func PeerSource(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(PeerHome(), "llama.cpp-src", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("needs llama.cpp's source from the peer harness (bash ../shared/peer/setup.sh): %v", err)
	}
	return p
}
