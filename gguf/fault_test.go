package gguf

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// copyModel copies the committed stories260K model into a temp dir.
func copyModel(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, "models/stories260K/stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sum reads every byte of b, as a kernel would, on a goroutine that
// recovers faults.
func sum(b []byte) (s byte, err error) {
	defer CatchFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for _, x := range b {
		s += x
	}
	return s, nil
}

// TestTruncatedWhileMapped truncates a mapped file: reading the cut-off
// tensor data is an error wrapping ErrFileChanged (not a SIGBUS crash),
// Check reports the change from then on, naming the file, and a file
// rewritten with the old bytes reads again.
func TestTruncatedWhileMapped(t *testing.T) {
	path := copyModel(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Check(); err != nil {
		t.Fatalf("Check on an untouched file: %v", err)
	}
	id := f.Identity()
	if len(id) != 1 || id[0].Size != int64(len(orig)) || id[0].Inode == 0 {
		t.Fatalf("Identity = %+v", id)
	}
	last := &f.Tensors[len(f.Tensors)-1]
	want, err := sum(last.Data)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	_, err = sum(last.Data)
	if !errors.Is(err, ErrFileChanged) {
		t.Fatalf("reading a truncated mapping: %v, want ErrFileChanged", err)
	}
	for _, s := range []string{path, "model file changed while in use", "now 4096 bytes"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if err := f.Check(); !errors.Is(err, ErrFileChanged) {
		t.Errorf("Check after the fault: %v", err)
	}

	// The same inode rewritten with the old bytes maps them again; Check
	// stays failed (the fault is sticky: the process served an error).
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := sum(last.Data); err != nil || got != want {
		t.Errorf("after the rewrite: sum %d, %v; want %d", got, err, want)
	}
	if err := f.Check(); !errors.Is(err, ErrFileChanged) {
		t.Errorf("Check after the rewrite: %v", err)
	}
}

// TestCheckSeesInPlaceChanges: Check fails when the mapped inode changes
// size in place, without any fault, and not when the path is replaced by
// another file (the mapping keeps the old inode).
func TestCheckSeesInPlaceChanges(t *testing.T) {
	path := copyModel(t)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other := path + ".new"
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(); err != nil {
		t.Errorf("Check after replacing the path by rename: %v", err)
	}

	path2 := copyModel(t)
	g, err := Open(path2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	fd, err := os.OpenFile(path2, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd.Write([]byte("more"))
	fd.Close()
	err = g.Check()
	if !errors.Is(err, ErrFileChanged) || !strings.Contains(err.Error(), path2) {
		t.Errorf("Check after appending in place: %v", err)
	}
}

// TestCatchFaultPassesOtherPanics: a panic that is not a fault on a
// mapping goes on panicking.
func TestCatchFaultPassesOtherPanics(t *testing.T) {
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v, want boom", r)
		}
	}()
	func() (err error) {
		defer CatchFault(&err)
		panic("boom")
	}()
}

// TestOpenRefusesNonRegular: a named pipe is refused at once (opening it
// for reading would wait for a writer forever), as are directories and
// devices, each named.
func TestOpenRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.gguf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, fifo + " is a named pipe, not a regular file"},
		{dir, dir + " is a directory, not a regular file"},
		{"/dev/null", "/dev/null is a character device, not a regular file"},
	} {
		_, err := Open(c.path)
		if err == nil || err.Error() != c.want {
			t.Errorf("Open(%s) = %v, want %q", c.path, err, c.want)
		}
	}
	// Through a symlink: the target is what counts.
	link := filepath.Join(dir, "link.gguf")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link); err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("Open(symlink to a fifo) = %v", err)
	}
}
