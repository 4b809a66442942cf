package gguf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
)

// HashSuffix is appended to a model's path to name the file caching its
// tensor hashes (SliceHashes).
const HashSuffix = ".ixhash"

// HashStats says how SliceHashes got its hashes.
type HashStats struct {
	// Cached is true when no tensor data was read (the sidecar file or the
	// process's memory had every hash).
	Cached bool
	// Bytes of tensor data hashed and the time it took.
	Bytes   int64
	Elapsed time.Duration
	// CacheErr is why the hashes could not be written beside the model
	// (a read-only directory, say); they are kept in memory only.
	CacheErr error
}

// hashCache is the process's copy of every sidecar read or written, by
// sidecar path.
var hashCache sync.Map // string -> *sidecar

// sidecar is the JSON form of a model's cached tensor hashes. It is valid
// for the files it names while their size, modification time and inode
// are unchanged.
type sidecar struct {
	Version int        `json:"version"`
	Files   []fileID   `json:"files"`
	Tensors []hashedTn `json:"tensors"`
}

type fileID struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
	Inode   uint64 `json:"inode"`
}

type hashedTn struct {
	Name   string   `json:"name"`
	Slices []string `json:"sha256"`
}

// identify returns the identity of f's files as they were when opened
// (the data hashed is the data mapped then).
func identify(f *File) []fileID {
	var ids []fileID
	for _, id := range f.Identity() {
		ids = append(ids, fileID{Name: filepath.Base(id.Path), Size: id.Size, MtimeNS: id.ModTime.UnixNano(), Inode: id.Inode})
	}
	return ids
}

func sameFiles(a, b []fileID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// SliceHashes returns, for each named tensor, the SHA-256 digests of its
// data cut into n equal consecutive slices (a routed expert tensor cut
// into its experts, say): n*32 bytes per name, in names' order.
//
// The digests are computed once per model file and cached beside it in
// PATH.ixhash (written atomically; valid while the model files' size,
// modification time and inode, as they were when f was opened, are
// unchanged). Where that file cannot be
// written (a read-only volume; a directory without write permission bits
// counts as read-only, even for root) they are kept in this process's
// memory and stats.CacheErr says why. A File from Parse is hashed every
// time.
func (f *File) SliceHashes(names []string, n int) ([][]byte, HashStats, error) {
	var stats HashStats
	if n <= 0 {
		return nil, stats, fmt.Errorf("gguf: %d slices per tensor", n)
	}
	paths := f.Paths()
	var ids []fileID
	var side string
	var have map[string][]byte
	if len(paths) > 0 && paths[0] != "" {
		ids = identify(f)
		side = paths[0] + HashSuffix
		have = loadSidecar(side, ids)
	}
	out := make([][]byte, len(names))
	var todo []int
	for i, name := range names {
		if h, ok := have[name]; ok && len(h) == n*sha256.Size {
			out[i] = h
			continue
		}
		t, ok := f.Tensor(name)
		if !ok {
			return nil, stats, fmt.Errorf("gguf: no tensor %s to hash", name)
		}
		if len(t.Data)%n != 0 {
			return nil, stats, fmt.Errorf("gguf: tensor %s: %d bytes do not split into %d slices", name, len(t.Data), n)
		}
		todo = append(todo, i)
		stats.Bytes += int64(len(t.Data))
	}
	if len(todo) == 0 {
		stats.Cached = true
		return out, stats, nil
	}
	start := time.Now()
	hashSlices(f, names, todo, n, out)
	stats.Elapsed = time.Since(start)
	if side != "" {
		if have == nil {
			have = map[string][]byte{}
		}
		for _, i := range todo {
			have[names[i]] = out[i]
		}
		stats.CacheErr = storeSidecar(side, ids, have)
	}
	return out, stats, nil
}

// hashSlices fills out[i] for i in todo, hashing slices on every CPU.
func hashSlices(f *File, names []string, todo []int, n int, out [][]byte) {
	type job struct{ i, s int }
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				t, _ := f.Tensor(names[j.i])
				per := len(t.Data) / n
				sum := sha256.Sum256(t.Data[j.s*per : (j.s+1)*per])
				copy(out[j.i][j.s*sha256.Size:], sum[:])
			}
		}()
	}
	for _, i := range todo {
		out[i] = make([]byte, n*sha256.Size)
		for s := range n {
			jobs <- job{i, s}
		}
	}
	close(jobs)
	wg.Wait()
}

// loadSidecar returns the hashes cached for the files ids (from memory or
// the sidecar at path) or nil.
func loadSidecar(path string, ids []fileID) map[string][]byte {
	sc, _ := hashCache.Load(path)
	s, _ := sc.(*sidecar)
	if s == nil || !sameFiles(s.Files, ids) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		s = &sidecar{}
		if json.Unmarshal(b, s) != nil || s.Version != 1 || !sameFiles(s.Files, ids) {
			return nil
		}
	}
	have := map[string][]byte{}
	for _, t := range s.Tensors {
		h := make([]byte, 0, len(t.Slices)*sha256.Size)
		ok := true
		for _, x := range t.Slices {
			d, err := hex.DecodeString(x)
			if err != nil || len(d) != sha256.Size {
				ok = false
				break
			}
			h = append(h, d...)
		}
		if ok {
			have[t.Name] = h
		}
	}
	return have
}

// storeSidecar remembers have in memory and writes it to path atomically.
func storeSidecar(path string, ids []fileID, have map[string][]byte) error {
	s := &sidecar{Version: 1, Files: ids}
	for _, name := range slices.Sorted(maps.Keys(have)) {
		h := have[name]
		n := len(h) / sha256.Size
		t := hashedTn{Name: name, Slices: make([]string, n)}
		for i := range n {
			t.Slices[i] = hex.EncodeToString(h[i*sha256.Size : (i+1)*sha256.Size])
		}
		s.Tensors = append(s.Tensors, t)
	}
	hashCache.Store(path, s)
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil {
		return err
	} else if st.Mode().Perm()&0o222 == 0 {
		return fmt.Errorf("gguf: %s is read-only: tensor hashes kept in memory", dir)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644) // readable like the model (CreateTemp makes 0600)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp.Name()))
	}
	return nil
}
