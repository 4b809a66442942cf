package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNamedPipesDoNotHang: `run -m FIFO` and `-f FIFO` without a writer
// used to block in open(2) forever, deaf to SIGTERM. Now the model is
// refused at once, a prompt pipe with nothing written to it too, and a
// pipe with a writer (as bash's <(command) gives) is read.
func TestNamedPipesDoNotHang(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := run(t, "run", "-m", fifo, "-p", "x")
	if code != 1 || !strings.Contains(errs, fifo+" is a named pipe, not a regular file") {
		t.Errorf("run -m FIFO: exit %d, stderr %q", code, errs)
	}
	code, _, errs = run(t, "run", "-m", stories(t), "-f", fifo, "-n", "1")
	if code != 1 || !strings.Contains(errs, fifo+" is a named pipe with nothing written to it") {
		t.Errorf("run -f FIFO: exit %d, stderr %q", code, errs)
	}
	if _, err := readInputFile(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("readInputFile(dir) = %v", err)
	}

	// A pipe that was written to, named as bash's <(command) names it
	// (/dev/fd/N): its text is read to the end.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.WriteString("Once upon a time")
	w.Close()
	b, err := readInputFile(fmt.Sprintf("/proc/self/fd/%d", r.Fd()))
	if err != nil || string(b) != "Once upon a time" {
		t.Errorf("readInputFile(a written pipe) = %q, %v", b, err)
	}
}
