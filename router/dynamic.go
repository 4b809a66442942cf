package router

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/inference-x/inference-x/experts"
)

// Dynamic is an experts.Backend whose nodes and placement change while it
// runs: each Forward uses the Router current when it starts, and Swap
// installs a new one, closing the old one once the calls using it have
// returned. A Forward never sees a half-changed placement. It is safe for
// concurrent use.
type Dynamic struct {
	cur atomic.Pointer[snapshot]
}

// snapshot is one Router and the calls in it: Forward holds mu for
// reading; Swap takes it for writing to wait them out.
type snapshot struct {
	r      *Router
	mu     sync.RWMutex
	closed bool
}

// NewDynamic returns a Dynamic routing with r.
func NewDynamic(r *Router) *Dynamic {
	d := &Dynamic{}
	d.cur.Store(&snapshot{r: r})
	return d
}

// acquire returns the current snapshot, read-locked and open.
func (d *Dynamic) acquire() *snapshot {
	for {
		s := d.cur.Load()
		s.mu.RLock()
		if !s.closed {
			return s
		}
		s.mu.RUnlock() // swapped out meanwhile: take the new one
	}
}

// Forward implements experts.Backend.
func (d *Dynamic) Forward(ctx context.Context, layer int, b *experts.Batch, out []float32) error {
	s := d.acquire()
	defer s.mu.RUnlock()
	return s.r.Forward(ctx, layer, b, out)
}

// Coverage implements experts.CoverageReporter with the current Router.
func (d *Dynamic) Coverage() experts.Coverage {
	s := d.acquire()
	defer s.mu.RUnlock()
	return s.r.Coverage()
}

// Router returns the current Router (for its table; do not close it).
func (d *Dynamic) Router() *Router { return d.cur.Load().r }

// Swap makes r the Router of new calls, waits for the calls still using
// the old one and closes it. When Swap returns, no call uses the old
// placement: experts only it assigned may be released.
func (d *Dynamic) Swap(r *Router) {
	old := d.cur.Swap(&snapshot{r: r})
	old.mu.Lock()
	old.closed = true
	old.r.Close()
	old.mu.Unlock()
}

// Close closes the current Router. Calls must have returned.
func (d *Dynamic) Close() error {
	s := d.cur.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.r.Close()
}
