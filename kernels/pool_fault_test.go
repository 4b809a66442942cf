package kernels

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mappedTask reads one byte of a page of a mapping per index on the
// workers (the caller only sleeps, so that the workers get chunks).
type mappedTask struct {
	data []byte
	sink atomic.Uint32
}

func (m *mappedTask) Do(lo, hi, worker int) {
	if worker == 0 {
		time.Sleep(50 * time.Microsecond)
		return
	}
	var s byte
	for i := lo; i < hi; i++ {
		s += m.data[(i*os.Getpagesize())%len(m.data)]
	}
	m.sink.Add(uint32(s))
}

// runCatching runs t on p from a goroutine with panic-on-fault, as a
// model Forward does, and returns what Run panicked with.
func runCatching(p *Pool, n int, t Task) (r any) {
	defer func() { r = recover() }()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	p.Run(n, 1, t)
	return nil
}

// TestPoolFaultOnWorker truncates a mapped file that pool workers read:
// the fault (SIGBUS) on a worker does not kill the process but re-panics
// on the caller with the fault address, and the pool keeps working.
func TestPoolFaultOnWorker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "weights")
	page := os.Getpagesize()
	if err := os.WriteFile(path, make([]byte, 64*page), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := unix.Mmap(int(fd.Fd()), 0, 64*page, unix.PROT_READ, unix.MAP_SHARED)
	fd.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(data)
	p := NewPool(3)
	defer p.Close()
	task := &mappedTask{data: data}
	if r := runCatching(p, 64, task); r != nil {
		t.Fatalf("Run on an intact mapping panicked: %v", r)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var fault any
	for try := 0; try < 200 && fault == nil; try++ {
		fault = runCatching(p, 64, task)
	}
	if fault == nil {
		t.Fatal("no worker read the truncated mapping in 200 Runs")
	}
	if _, ok := fault.(interface{ Addr() uintptr }); !ok {
		t.Fatalf("Run panicked with %v (%T), want a memory fault", fault, fault)
	}
	t.Log(fault)
	// The pool survives, and the fault does not leak into the next Run.
	c := &countTask{hits: make([]atomic.Int32, 4096), workers: make([]atomic.Int32, 3), grain: 1}
	if r := runCatching(p, 4096, c); r != nil {
		t.Fatalf("Run after the fault panicked: %v", r)
	}
	for i := range c.hits {
		if c.hits[i].Load() != 1 {
			t.Fatalf("index %d visited %d times after the fault", i, c.hits[i].Load())
		}
	}
}
