package kernels

import (
	"sync/atomic"
	"testing"
	"time"
)

// countTask counts how often each index is visited and which workers ran.
type countTask struct {
	hits    []atomic.Int32
	workers []atomic.Int32
	grain   int
	bad     atomic.Int32
}

func (c *countTask) Do(lo, hi, worker int) {
	if lo%c.grain != 0 || lo >= hi {
		c.bad.Add(1)
	}
	c.workers[worker].Add(1)
	for i := lo; i < hi; i++ {
		c.hits[i].Add(1)
	}
}

// TestPoolCoversEveryIndexOnce runs many Runs of varied sizes, with pauses
// long enough for the workers to park between some of them.
func TestPoolCoversEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 5} {
		p := NewPool(threads)
		for iter := 0; iter < 300; iter++ {
			n := []int{0, 1, 2, 7, 64, 1000, 4096, 10007}[iter%8]
			grain := []int{1, 4, 16}[iter%3]
			c := &countTask{hits: make([]atomic.Int32, n), workers: make([]atomic.Int32, threads), grain: grain}
			p.Run(n, grain, c)
			for i := range c.hits {
				if h := c.hits[i].Load(); h != 1 {
					t.Fatalf("threads %d n %d grain %d: index %d visited %d times", threads, n, grain, i, h)
				}
			}
			if c.bad.Load() != 0 {
				t.Fatalf("threads %d n %d grain %d: a range not aligned to the grain", threads, n, grain)
			}
			if iter%50 == 49 {
				time.Sleep(2 * time.Millisecond) // let the workers park
			}
		}
		p.Close()
		p.Close() // idempotent
	}
}

// TestPoolUsesWorkers checks that a large Run is shared.
func TestPoolUsesWorkers(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	shared := false
	for try := 0; try < 200 && !shared; try++ {
		c := &countTask{hits: make([]atomic.Int32, 1<<16), workers: make([]atomic.Int32, 2), grain: 1}
		slow := &slowTask{c}
		p.Run(1<<16, 1, slow)
		shared = c.workers[1].Load() > 0
	}
	if !shared {
		t.Fatal("the worker never took part in a Run")
	}
}

type slowTask struct{ c *countTask }

func (s *slowTask) Do(lo, hi, worker int) {
	s.c.Do(lo, hi, worker)
	x := 0
	for i := lo; i < hi; i++ {
		x += i * i
	}
	sinkInt.Add(int64(x))
}

var sinkInt atomic.Int64

// BenchmarkPoolRun measures the cost of dispatching an empty-ish Run to
// spinning workers.
func BenchmarkPoolRun(b *testing.B) {
	p := NewPool(2)
	defer p.Close()
	c := &countTask{hits: make([]atomic.Int32, 64), workers: make([]atomic.Int32, 2), grain: 1}
	for b.Loop() {
		p.Run(64, 1, c)
		for i := range c.hits {
			c.hits[i].Store(0)
		}
	}
}
