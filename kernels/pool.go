package kernels

import (
	"runtime"
	"runtime/debug"
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
// the pool; the calling goroutine takes part in every Run.
//
// A Run publishes a ticket (generation, next index) that the workers spin
// on; everyone, the caller included, claims chunks of the range with a
// compare-and-swap on the ticket until none is left, and the caller then
// waits only for chunks still running. No channel operation, allocation or
// goroutine start happens per Run while the workers are awake, and a worker
// that is late (descheduled by another process) costs the caller nothing:
// the caller takes its chunks. A worker that sees no Run for a while parks
// on its own channel (an idle pool costs no CPU) and the next Run wakes it;
// how long it spins first adapts: a worker that keeps arriving after the
// work is gone spins less.
//
// Run is not safe for concurrent use: one goroutine drives a pool (one
// pool per sequence batch driver). Close stops the workers.
//
// Tasks read weights from memory-mapped model files, and a file truncated
// underneath makes those reads fault. The workers run with
// debug.SetPanicOnFault: a fault in a chunk is recovered, the other
// chunks finish, and Run panics with the fault on the caller's goroutine,
// where the caller's boundary (gguf.CatchFault) turns it into an error;
// the pool stays usable.
type Pool struct {
	threads int
	workers []*poolWorker
	task    Task // the current Run's task; read only after a claim succeeds

	_      [64]byte
	ticket atomic.Uint64 // generation<<32 | next unclaimed index
	_      [56]byte
	// shapes[g&1] is n<<32 | chunk of generation g. Two slots, so that
	// a worker holding a ticket of the previous generation never reads
	// the shape of the next: the slot it reads is only rewritten two
	// generations later, by which time its ticket is stale and its claim
	// fails.
	shapes  [2]atomic.Uint64
	_       [48]byte
	running atomic.Int32 // claimed chunks not yet finished
	_       [60]byte

	// The caller parks on done when chunks run long.
	callerParked atomic.Int32
	done         chan struct{}
	closed       atomic.Bool
	stop         sync.Once

	// The first memory fault a chunk of the current Run hit (do).
	faulted  atomic.Bool
	faultMu  sync.Mutex
	faultVal any

	mm matmulTask
	qt quantTask
	pt packTask
	tt tileTask
}

// poolWorker is one worker's parking place and spin budget.
type poolWorker struct {
	parked atomic.Int32
	wake   chan struct{}
	spin   int
	_      [40]byte
}

const (
	// spinLimit is how many polls (each a PAUSE, some tens of ns) a
	// waiting goroutine makes at most before it parks: about 50-100 µs,
	// longer than the gaps between the operations of a forward pass.
	spinLimit = 2000
	// spinFloor is the least a worker spins once it has been late often.
	spinFloor = 16
	// chunksPerThread is how many pieces each thread's share of a Run is
	// cut into, so that a thread slowed by another process leaves its last
	// pieces to the others.
	chunksPerThread = 4
)

// NewPool starts a pool of threads workers (the caller counts as one);
// threads <= 0 means one per available CPU.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, done: make(chan struct{}, 1)}
	for i := 1; i < threads; i++ {
		w := &poolWorker{wake: make(chan struct{}, 1), spin: spinLimit}
		p.workers = append(p.workers, w)
		go p.worker(i, w)
	}
	return p
}

// Threads returns the number of goroutines that share each Run.
func (p *Pool) Threads() int { return p.threads }

func (p *Pool) worker(id int, w *poolWorker) {
	debug.SetPanicOnFault(true) // see do
	var seen uint32             // generation 0 is NewPool's: a Run may come before this goroutine starts
	for {
		seen = p.awaitGen(w, seen)
		if p.closed.Load() {
			return
		}
		if p.work(id, seen) {
			w.spin = spinLimit
		} else {
			w.spin = max(w.spin/2, spinFloor)
		}
	}
}

// gen returns the generation of a ticket.
func gen(ticket uint64) uint32 { return uint32(ticket >> 32) }

// awaitGen returns the generation once it differs from seen: spinning
// first, then parked on w.wake.
func (p *Pool) awaitGen(w *poolWorker, seen uint32) uint32 {
	for i := 0; i < w.spin; i++ {
		if g := gen(p.ticket.Load()); g != seen {
			return g
		}
		cpuRelax()
	}
	w.parked.Store(1)
	if g := gen(p.ticket.Load()); g != seen {
		if w.parked.CompareAndSwap(1, 0) {
			return g
		}
		// Run saw us parked and is sending a wake-up: take it.
	}
	<-w.wake
	return gen(p.ticket.Load())
}

// work claims and runs chunks of generation g until none is left, and
// reports whether it ran any.
func (p *Pool) work(id int, g uint32) bool {
	ran := false
	for {
		v := p.ticket.Load()
		sh := p.shapes[gen(v)&1].Load()
		n, chunk := sh>>32, sh&0xffffffff
		lo := v & 0xffffffff
		if gen(v) != g || lo >= n {
			return ran
		}
		// Count the chunk as running before claiming it, so that the
		// caller cannot see the range exhausted and nothing running while
		// a claim is under way.
		p.running.Add(1)
		if !p.ticket.CompareAndSwap(v, v+chunk) {
			p.finished()
			continue
		}
		// The claim succeeded while generation g had work left, so its
		// Run is still waiting and task and shape belong to it.
		p.do(int(lo), int(min(lo+chunk, n)), id)
		p.finished()
		ran = true
	}
}

// do runs one chunk. A memory fault in it (a read of a model file's
// mapping after the file was truncated) is kept for Run to re-raise on
// the caller's goroutine; any other panic crashes as before.
func (p *Pool) do(lo, hi, worker int) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			p.faultMu.Lock()
			if p.faultVal == nil {
				p.faultVal = r
			}
			p.faultMu.Unlock()
			p.faulted.Store(true)
		}
	}()
	p.task.Do(lo, hi, worker)
}

// raiseFault panics with the fault a chunk of the last Run hit, if any.
func (p *Pool) raiseFault() {
	if !p.faulted.Load() {
		return
	}
	p.faultMu.Lock()
	r := p.faultVal
	p.faultVal = nil
	p.faulted.Store(false)
	p.faultMu.Unlock()
	panic(r)
}

// finished marks a chunk done and wakes a parked caller after the last.
func (p *Pool) finished() {
	if p.running.Add(-1) == 0 && p.callerParked.Load() == 1 && p.callerParked.CompareAndSwap(1, 0) {
		p.done <- struct{}{}
	}
}

// Run calls t.Do over [0, n) split across the pool in chunks that are
// multiples of grain, and returns when all are done. A memory fault in a
// chunk re-panics on the caller's goroutine once all are done.
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
	if n >= 1<<32 {
		panic("kernels: Pool.Run over more than 2^32 indices")
	}
	chunk := (n + p.threads*chunksPerThread - 1) / (p.threads * chunksPerThread)
	chunk = (chunk + grain - 1) / grain * grain
	p.task = t
	g := gen(p.ticket.Load()) + 1
	p.shapes[g&1].Store(uint64(n)<<32 | uint64(chunk))
	p.ticket.Store(uint64(g) << 32)
	for _, w := range p.workers {
		if w.parked.Load() == 1 && w.parked.CompareAndSwap(1, 0) {
			w.wake <- struct{}{}
		}
	}
	p.work(0, g)
	p.awaitChunks()
	p.task = nil
	p.raiseFault()
}

// awaitChunks returns when no claimed chunk is running.
func (p *Pool) awaitChunks() {
	for i := 0; i < spinLimit; i++ {
		if p.running.Load() == 0 {
			return
		}
		cpuRelax()
	}
	p.callerParked.Store(1)
	if p.running.Load() == 0 && p.callerParked.CompareAndSwap(1, 0) {
		return
	}
	<-p.done
}

// Close stops the workers. The pool must not be used afterwards.
func (p *Pool) Close() {
	p.stop.Do(func() {
		p.closed.Store(true)
		p.ticket.Add(1 << 32)
		for _, w := range p.workers {
			if w.parked.CompareAndSwap(1, 0) {
				w.wake <- struct{}{}
			}
		}
	})
}
