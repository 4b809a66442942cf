package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Task is a unit of parallel work over an index range. Do is called with
// disjoint [lo, hi) ranges from several goroutines at once, possibly more
// than once per goroutine and Run; worker (0 to Threads()-1) identifies the
// caller, so a task can index per-worker scratch space.
type Task interface {
	Do(lo, hi, worker int)
}

// Pool runs Tasks on a fixed set of worker goroutines that live as long as
// the pool. Dispatch is a generation counter the workers spin on and a
// countdown the caller spins on: no channel operation, allocation or
// goroutine start per Run while the workers are busy. A worker that finds
// no work for spinLimit polls parks on its own channel, so an idle pool
// costs no CPU; the next Run wakes it. The calling goroutine takes a share
// of every Run.
//
// Run is not safe for concurrent use: one goroutine drives a pool (one
// pool per sequence batch driver). Close stops the workers.
type Pool struct {
	threads int
	workers []*poolWorker

	// The current Run, written by the caller before gen is bumped.
	task  Task
	n     int
	chunk int

	_       [64]byte // keep the hot counters off the fields above
	gen     atomic.Uint32
	_       [60]byte
	next    atomic.Int64 // start of the next unclaimed chunk
	_       [56]byte
	pending atomic.Int32 // workers still inside the current Run
	_       [60]byte

	// The caller parks on done when the workers take long.
	callerParked atomic.Int32
	done         chan struct{}
	closed       atomic.Bool
	stop         sync.Once

	mm matmulTask
}

// poolWorker is one worker's parking place, on its own cache line.
type poolWorker struct {
	parked atomic.Int32
	wake   chan struct{}
	_      [52]byte
}

// spinLimit is how many polls (each a PAUSE, some tens of ns) a waiting
// goroutine makes before it parks: about 50-100 µs, longer than the gap
// between the operations of a forward pass, much shorter than a human
// notices as load.
const spinLimit = 2000

// NewPool starts a pool of threads workers (the caller counts as one);
// threads <= 0 means one per available CPU.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, done: make(chan struct{}, 1)}
	for i := 1; i < threads; i++ {
		w := &poolWorker{wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		go p.worker(i, w)
	}
	return p
}

// Threads returns the number of goroutines that share each Run.
func (p *Pool) Threads() int { return p.threads }

func (p *Pool) worker(id int, w *poolWorker) {
	var seen uint32 // the generation at NewPool: a Run may come before this goroutine starts
	for {
		seen = p.awaitGen(w, seen)
		if p.closed.Load() {
			return
		}
		p.work(id)
		if p.pending.Add(-1) == 0 && p.callerParked.Load() == 1 && p.callerParked.CompareAndSwap(1, 0) {
			p.done <- struct{}{}
		}
	}
}

// awaitGen returns once the generation differs from seen: spinning first,
// then parked on w.wake.
func (p *Pool) awaitGen(w *poolWorker, seen uint32) uint32 {
	for i := 0; i < spinLimit; i++ {
		if g := p.gen.Load(); g != seen {
			return g
		}
		cpuRelax()
	}
	w.parked.Store(1)
	if g := p.gen.Load(); g != seen {
		if w.parked.CompareAndSwap(1, 0) {
			return g
		}
		// Run saw us parked and is sending a wake-up: take it.
	}
	<-w.wake
	return p.gen.Load()
}

// work runs chunks of the current task until none is left.
func (p *Pool) work(id int) {
	n, chunk, t := int64(p.n), int64(p.chunk), p.task
	for {
		lo := p.next.Add(chunk) - chunk
		if lo >= n {
			return
		}
		t.Do(int(lo), int(min(lo+chunk, n)), id)
	}
}

// chunksPerThread is how many pieces each thread's share of a Run is cut
// into, so that a thread slowed by another process leaves its last pieces
// to the others.
const chunksPerThread = 4

// Run calls t.Do over [0, n) split across the pool in chunks that are
// multiples of grain, and returns when all are done.
func (p *Pool) Run(n, grain int, t Task) {
	if grain < 1 {
		grain = 1
	}
	if n <= 0 {
		return
	}
	if p.threads == 1 || n <= grain {
		t.Do(0, n, 0)
		return
	}
	chunk := (n + p.threads*chunksPerThread - 1) / (p.threads * chunksPerThread)
	chunk = (chunk + grain - 1) / grain * grain
	p.task, p.n, p.chunk = t, n, chunk
	p.next.Store(0)
	p.pending.Store(int32(len(p.workers)))
	p.gen.Add(1)
	for _, w := range p.workers {
		if w.parked.Load() == 1 && w.parked.CompareAndSwap(1, 0) {
			w.wake <- struct{}{}
		}
	}
	p.work(0)
	p.awaitWorkers()
	p.task = nil
}

// awaitWorkers returns when every worker has left the current Run.
func (p *Pool) awaitWorkers() {
	for i := 0; i < spinLimit; i++ {
		if p.pending.Load() == 0 {
			return
		}
		cpuRelax()
	}
	p.callerParked.Store(1)
	if p.pending.Load() == 0 {
		if p.callerParked.CompareAndSwap(1, 0) {
			return
		}
	}
	<-p.done
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.stop.Do(func() {
		p.closed.Store(true)
		p.gen.Add(1)
		for _, w := range p.workers {
			if w.parked.CompareAndSwap(1, 0) {
				w.wake <- struct{}{}
			}
		}
	})
}
