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
	root := RepoDir()
	if root == "" {
		return ""
	}
	p := filepath.Join(root, "..", "shared")
	if st, err := os.Stat(p); err != nil || !st.IsDir() {
		return ""
	}
	abs, _ := filepath.Abs(p)
	return abs
}

// RepoDir returns the absolute path of the repository root: the first
// folder holding go.mod from the working directory up, or "" when none
// does.
func RepoDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// committed maps the files of ../shared that the repository also holds
// to their copies (relative to the root), so that the tests needing only
// them run on a fresh clone.
var committed = map[string]string{
	"models/stories260K/stories260K.gguf": "testdata/stories260K/stories260K.gguf",
}

// Shared returns the path of rel inside ../shared, skipping the test with a
// message saying what is missing when it is absent. A file the repository
// also commits (the stories260K model, in testdata/) is found there when
// ../shared does not have it.
func Shared(t testing.TB, rel string) string {
	t.Helper()
	d := SharedDir()
	var p string
	var err error
	if d != "" {
		p = filepath.Join(d, rel)
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	if c, ok := committed[filepath.ToSlash(rel)]; ok && RepoDir() != "" {
		if q := filepath.Join(RepoDir(), filepath.FromSlash(c)); fileExists(q) {
			return q
		}
	}
	if d == "" {
		t.Skipf("../shared not found beside the repository: this test needs ../shared/%s", rel)
	}
	t.Skipf("this test needs ../shared/%s: %v", rel, err)
	return p
}

// CommittedStories260K returns the stories260K model committed in the
// repository (testdata/stories260K/stories260K.gguf), failing the test
// when it is missing: unlike the files of ../shared, it is always there.
func CommittedStories260K(t testing.TB) string {
	t.Helper()
	root := RepoDir()
	if root == "" {
		t.Fatal("testenv: no go.mod above the working directory")
	}
	p := filepath.Join(root, filepath.FromSlash(committed["models/stories260K/stories260K.gguf"]))
	if !fileExists(p) {
		t.Fatalf("testenv: the committed model %s is missing", p)
	}
	return p
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
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
