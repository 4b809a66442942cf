package quantize

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// Source writes the f32 values of rows [r0, r1) of a tensor into dst,
// which holds exactly (r1-r0) rows. A Converter calls it from several
// goroutines at once with disjoint row ranges, so it must be safe for
// that; it must fill dst the same way whatever the ranges are (the output
// bytes must not depend on the thread count).
type Source func(dst []float32, r0, r1 int) error

// chunkElems is about how many values one work item holds: small enough to
// spread a tensor over the threads and keep the scratch in cache, large
// enough that scheduling costs nothing.
const chunkElems = 1 << 16

// Converter encodes f32 rows as any ggml type with kernels' quantizers,
// row-parallel on Threads goroutines. Rows are independent, so the bytes do
// not depend on Threads. The zero value uses one goroutine per CPU.
type Converter struct {
	Threads int
	// Progress, if not nil, is called with the output bytes of each batch
	// of rows as it is encoded, from several goroutines at once.
	Progress func(bytes int64)
}

func (c Converter) threads() int {
	if c.Threads > 0 {
		return c.Threads
	}
	return runtime.GOMAXPROCS(0)
}

// Convert encodes rows×cols values from src as type t into dst, which must
// be exactly rows×RowBytes(cols) long. imatrix, if not nil, holds one
// importance weight per column, used for every row (llama.cpp's quantizer
// takes one per column and expert; an all-ones matrix is the same for
// each). It returns when every row is written, on the first error, or when
// ctx is cancelled.
func (c Converter) Convert(ctx context.Context, t gguf.Type, cols, rows int, src Source, imatrix []float32, dst []byte) error {
	f, err := kernels.Lookup(t)
	if err != nil {
		return err
	}
	if f.Quantize == nil {
		return fmt.Errorf("%w: this build cannot quantize to %v", kernels.ErrNoKernel, t)
	}
	rb, err := t.RowBytes(cols)
	if err != nil {
		return err
	}
	if int64(len(dst)) != int64(rows)*int64(rb) {
		return fmt.Errorf("quantize: %d rows of %v need %d bytes, buffer has %d", rows, t, int64(rows)*int64(rb), len(dst))
	}
	if imatrix != nil && len(imatrix) != cols {
		return fmt.Errorf("quantize: importance matrix has %d columns, rows have %d", len(imatrix), cols)
	}
	if f.NeedsImatrix && imatrix == nil {
		return fmt.Errorf("quantize: %v needs an importance matrix", t)
	}
	perChunk := max(1, chunkElems/max(cols, 1))
	chunks := (rows + perChunk - 1) / perChunk
	workers := min(c.threads(), chunks)

	var next atomic.Int64
	var once sync.Once
	var firstErr error
	fail := func(err error) { once.Do(func() { firstErr = err }) }
	var failed atomic.Bool
	work := func() {
		// src usually reads a mapped model file: a fault on it (the file
		// truncated underneath) fails the conversion instead of the process.
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if r := recover(); r != nil {
				err := gguf.FaultError(r)
				if err == nil {
					panic(r)
				}
				fail(err)
				failed.Store(true)
			}
		}()
		scratch := make([]float32, perChunk*cols)
		for !failed.Load() {
			k := int(next.Add(1) - 1)
			if k >= chunks {
				return
			}
			if err := ctx.Err(); err != nil {
				fail(err)
				failed.Store(true)
				return
			}
			r0 := k * perChunk
			r1 := min(rows, r0+perChunk)
			x := scratch[:(r1-r0)*cols]
			if err := src(x, r0, r1); err != nil {
				fail(err)
				failed.Store(true)
				return
			}
			for r := r0; r < r1; r++ {
				f.Quantize(dst[r*rb:(r+1)*rb], x[(r-r0)*cols:(r-r0+1)*cols], imatrix)
			}
			if c.Progress != nil {
				c.Progress(int64(r1-r0) * int64(rb))
			}
		}
	}
	if workers <= 1 {
		work()
		return firstErr
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	wg.Wait()
	return firstErr
}

// Tracker adds up progress reported from several goroutines and passes
// the running total to one callback, one call at a time.
type Tracker struct {
	mu          sync.Mutex
	done, total int64
	fn          func(done, total int64)
}

// NewTracker returns a tracker of total bytes reporting to fn (which may
// be nil: then Add does nothing). It reports 0 at once.
func NewTracker(total int64, fn func(done, total int64)) *Tracker {
	t := &Tracker{total: total, fn: fn}
	t.Add(0)
	return t
}

// Add records n more bytes done. It is safe for concurrent use.
func (t *Tracker) Add(n int64) {
	if t == nil || t.fn == nil {
		return
	}
	t.mu.Lock()
	t.done += n
	t.fn(min(t.done, t.total), t.total)
	t.mu.Unlock()
}

// Ones returns an all-ones importance matrix of n columns: what llama.cpp
// does with one is what it does with real statistics, minus the statistics.
func Ones(n int) []float32 {
	m := make([]float32, n)
	for i := range m {
		m[i] = 1
	}
	return m
}
