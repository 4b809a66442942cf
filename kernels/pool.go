package kernels

import (
	"runtime"
	"sync"
)

// Task is a unit of parallel work over an index range. Do is called with
// disjoint [lo, hi) ranges from several goroutines at once; worker (0 to
// Threads()-1) identifies the caller, so a task can index per-worker
// scratch space.
type Task interface {
	Do(lo, hi, worker int)
}

// Pool runs Tasks on a fixed set of worker goroutines that live as long as
// the pool, so dispatching work allocates nothing and starts no goroutine.
// The calling goroutine takes a share of every Run. Run is not safe for
// concurrent use: one goroutine drives a pool (one pool per sequence
// batch driver).
type Pool struct {
	threads int
	wake    []chan struct{}
	done    chan struct{}
	task    Task
	n       int
	grain   int
	stop    sync.Once

	mm matmulTask
}

// NewPool starts a pool of threads workers (the caller counts as one);
// threads <= 0 means one per available CPU.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, done: make(chan struct{}, threads)}
	for i := 1; i < threads; i++ {
		ch := make(chan struct{}, 1)
		p.wake = append(p.wake, ch)
		go p.worker(i, ch)
	}
	return p
}

// Threads returns the number of goroutines that share each Run.
func (p *Pool) Threads() int { return p.threads }

func (p *Pool) worker(id int, wake chan struct{}) {
	for range wake {
		p.share(id)
		p.done <- struct{}{}
	}
}

// share runs worker id's contiguous share of [0, n), rounded to grain.
func (p *Pool) share(id int) {
	lo, hi := split(p.n, p.grain, p.threads, id)
	if lo < hi {
		p.task.Do(lo, hi, id)
	}
}

// split returns part id of nparts of [0, n) in multiples of grain.
func split(n, grain, nparts, id int) (int, int) {
	blocks := (n + grain - 1) / grain
	lo := blocks * id / nparts * grain
	hi := blocks * (id + 1) / nparts * grain
	return min(lo, n), min(hi, n)
}

// Run calls t.Do over [0, n) split across the pool in chunks that are
// multiples of grain, and returns when all are done.
func (p *Pool) Run(n, grain int, t Task) {
	if grain < 1 {
		grain = 1
	}
	workers := min(p.threads, (n+grain-1)/grain)
	if workers <= 1 {
		if n > 0 {
			t.Do(0, n, 0)
		}
		return
	}
	p.task, p.n, p.grain = t, n, grain
	for i := 1; i < p.threads; i++ {
		p.wake[i-1] <- struct{}{}
	}
	p.share(0)
	for i := 1; i < p.threads; i++ {
		<-p.done
	}
	p.task = nil
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.stop.Do(func() {
		for _, ch := range p.wake {
			close(ch)
		}
	})
}
