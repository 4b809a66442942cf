package gguf

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSliceHashesCached(t *testing.T) {
	path := writeSample(t, nil)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := []string{"b.q4_k", "d.iq2_xxs"}
	sums, st, err := f.SliceHashes(names, 2)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cached || st.CacheErr != nil || st.Bytes == 0 {
		t.Fatalf("first hashing: %+v", st)
	}
	d, _ := f.Tensor("d.iq2_xxs")
	half := len(d.Data) / 2
	want := sha256.Sum256(d.Data[half:])
	if !bytes.Equal(sums[1][32:], want[:]) {
		t.Fatalf("slice 1 of d: %x, want %x", sums[1][32:], want)
	}
	if _, err := os.Stat(path + HashSuffix); err != nil {
		t.Fatalf("no sidecar: %v", err)
	}

	// Hashes of other tensors in other slice counts join the sidecar.
	if _, st, err := f.SliceHashes([]string{"a.f32"}, 1); err != nil || st.Cached {
		t.Fatalf("another tensor: %+v %v", st, err)
	}
	// Another process (no memory cache) reads the sidecar.
	hashCache.Clear()
	again, st, err := f.SliceHashes(names, 2)
	if err != nil || !st.Cached || !bytes.Equal(again[0], sums[0]) || !bytes.Equal(again[1], sums[1]) {
		t.Fatalf("from the sidecar: %+v %v", st, err)
	}
	// A changed file (here its modification time), opened again, is
	// hashed again.
	hashCache.Clear()
	if err := os.Chtimes(path, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if _, st, err = f2.SliceHashes(names, 2); err != nil || st.Cached {
		t.Fatalf("after the file changed: %+v %v", st, err)
	}
	if _, _, err := f.SliceHashes([]string{"c.q8_0"}, 3); err == nil {
		t.Fatal("c.q8_0 (68 bytes) cut into 3 slices: no error")
	}
}

func TestSliceHashesReadOnlyDir(t *testing.T) {
	path := writeSample(t, nil)
	dir := filepath.Dir(path)
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, st, err := f.SliceHashes([]string{"a.f32"}, 1)
	if err != nil || st.CacheErr == nil {
		t.Fatalf("read-only dir: %+v %v, want hashes and a cache error", st, err)
	}
	if _, err := os.Stat(path + HashSuffix); err == nil {
		t.Fatal("a sidecar was written into a read-only directory")
	}
	if _, st, err = f.SliceHashes([]string{"a.f32"}, 1); err != nil || !st.Cached {
		t.Fatalf("second call: %+v %v, want the in-memory copy", st, err)
	}
}
