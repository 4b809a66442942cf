package experts

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// simLayers is a model of nLayers MoE layers of n experts of size bytes.
func simLayers(nLayers, n int, size int64) []SimLayer {
	out := make([]SimLayer, nLayers)
	for l := range out {
		out[l] = SimLayer{Experts: n, Bytes: size}
	}
	return out
}

// randomTrace draws steps of k experts per layer, skewed so that low ids
// are more popular (like a router with a bias).
func randomTrace(rng *rand.Rand, steps, nLayers, n, k int) []TraceStep {
	var out []TraceStep
	for s := 0; s < steps; s++ {
		l := s % nLayers
		seen := map[int32]bool{}
		var ids []int32
		for len(ids) < k {
			e := int32(float64(n) * rng.Float64() * rng.Float64())
			if !seen[e] {
				seen[e] = true
				ids = append(ids, e)
			}
		}
		slices.Sort(ids)
		out = append(out, TraceStep{Layer: l, Experts: ids})
	}
	return out
}

// checkInvariants verifies the pager's books: resident bytes, heap order
// and positions.
func checkInvariants(t *testing.T, p *pager) {
	t.Helper()
	var res, pinned int64
	inHeap := 0
	for i := range p.ents {
		en := &p.ents[i]
		if en.resident {
			res += en.bytes
		}
		if en.pinned {
			pinned += en.bytes
		}
		if en.heapIdx >= 0 {
			inHeap++
			if !en.resident || en.pinned || p.heap[en.heapIdx] != int32(i) {
				t.Fatalf("entry %d: heap position %d inconsistent (resident %v, pinned %v)", i, en.heapIdx, en.resident, en.pinned)
			}
		} else if en.resident && !en.pinned {
			t.Fatalf("entry %d is resident but not in the heap", i)
		}
	}
	if res != p.resident || pinned != p.pinned || inHeap != len(p.heap) {
		t.Fatalf("books: resident %d (entries say %d), pinned %d (%d), heap %d (%d)", p.resident, res, p.pinned, pinned, len(p.heap), inHeap)
	}
	for j := 1; j < len(p.heap); j++ {
		if p.less(p.heap[j], p.heap[(j-1)/2]) {
			t.Fatalf("heap order broken at %d", j)
		}
	}
}

func TestPagerBudget(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	layers := simLayers(4, 64, 1000)
	trace := randomTrace(rng, 400, 4, 64, 6)
	for _, pol := range []Policy{PolicyLRU, PolicyLFU, PolicyLRFU} {
		cfg := DefaultPagerConfig(40_000)
		cfg.Policy, cfg.Lambda = pol, 0.05
		cfg.Pin = map[int][]int{2: {1, 2}}
		lays, err := simLayout(trace, layers)
		if err != nil {
			t.Fatal(err)
		}
		p, err := newPager(lays, cfg, nopAdvisor{})
		if err != nil {
			t.Fatal(err)
		}
		for k, st := range trace {
			active := slices.Clone(st.Experts)
			base := lays[st.Layer].base
			p.begin(st.Layer, base, active)
			// begin reorders: resident first, each part increasing.
			if !slices.Equal(slices.Sorted(slices.Values(active)), st.Experts) {
				t.Fatalf("step %d: begin changed the set %v -> %v", k, st.Experts, active)
			}
			if k%3 == 0 {
				next := (st.Layer + 1) % 4
				p.prefetch(next, lays[next].base, []int32{3, 5, 60})
			}
			checkInvariants(t, p)
			p.end(base, active)
			checkInvariants(t, p)
			if p.resident > cfg.Budget {
				t.Fatalf("%v step %d: %d bytes resident over the budget %d", pol, k, p.resident, cfg.Budget)
			}
			for _, e := range cfg.Pin[2] {
				if !p.ents[lays[2].base+e].resident {
					t.Fatalf("pinned expert %d evicted", e)
				}
			}
		}
		s := p.stats()
		if s.Hits+s.Misses != uint64(len(trace)*6) || s.Evictions == 0 || s.Predicted == 0 {
			t.Errorf("%v: stats %+v", pol, s)
		}
	}
}

// TestPolicyOrder checks which expert each policy evicts.
func TestPolicyOrder(t *testing.T) {
	layers := simLayers(1, 4, 100)
	// Expert 0 is used often long ago, 1 once recently, then 2 and 3
	// need room for one more: LRU drops 0, LFU drops 1.
	trace := []TraceStep{{0, []int32{0}}, {0, []int32{0}}, {0, []int32{0}}, {0, []int32{1}}, {0, []int32{2}}}
	for pol, victim := range map[Policy]int{PolicyLRU: 0, PolicyLFU: 1, PolicyLRFU: 1} {
		cfg := DefaultPagerConfig(200)
		cfg.Policy, cfg.Lambda = pol, 0.1
		lays, _ := simLayout(trace, layers)
		p, err := newPager(lays, cfg, nopAdvisor{})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range trace {
			a := slices.Clone(st.Experts)
			p.begin(0, 0, a)
			p.end(0, a)
		}
		if p.ents[victim].resident || !p.ents[2].resident {
			t.Errorf("%v: expected expert %d evicted; resident: %v %v %v", pol, victim, p.ents[0].resident, p.ents[1].resident, p.ents[2].resident)
		}
	}
	// A large lambda makes LRFU behave like LRU.
	cfg := DefaultPagerConfig(200)
	cfg.Lambda = 5
	s, _ := Simulate(trace, layers, cfg)
	cfg.Policy = PolicyLRU
	s2, _ := Simulate(trace, layers, cfg)
	if s.Hits != s2.Hits || s.Evictions != s2.Evictions {
		t.Errorf("LRFU lambda 5 %+v differs from LRU %+v", s, s2)
	}
}

func TestSimulateOptimalBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	layers := simLayers(3, 48, 500)
	trace := randomTrace(rng, 600, 3, 48, 5)
	for _, budget := range []int64{5_000, 20_000, 60_000} {
		opt, err := SimulateOptimal(trace, layers, budget)
		if err != nil {
			t.Fatal(err)
		}
		if opt.PeakResidentBytes > budget+5*500 {
			t.Errorf("optimal peak %d over budget %d", opt.PeakResidentBytes, budget)
		}
		for _, pol := range []Policy{PolicyLRU, PolicyLFU, PolicyLRFU} {
			cfg := DefaultPagerConfig(budget)
			cfg.Policy = pol
			s, err := Simulate(trace, layers, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.Misses < opt.Misses {
				t.Errorf("budget %d: %v misses %d, fewer than the optimum %d", budget, pol, s.Misses, opt.Misses)
			}
		}
	}
}

func TestReadTrace(t *testing.T) {
	f := testFile(t, 64, 32, 8, []layerSpec{dense, {gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	var buf bytes.Buffer
	st, err := NewStore(f, StoreConfig{Threads: 1, Trace: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := testBatch(rand.New(rand.NewPCG(4, 4)), 3, 2, 64, 8)
	out := make([]float32, 3*64)
	if err := st.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTrace(&buf)
	if err != nil || len(tr) != 1 || tr[0].Layer != 1 {
		t.Fatalf("trace %v, %v", tr, err)
	}
	want := slices.Sorted(slices.Values(slices.Compact(slices.Sorted(slices.Values(b.Experts)))))
	if !slices.Equal(tr[0].Experts, want) {
		t.Errorf("trace experts %v, want %v", tr[0].Experts, want)
	}
	if _, err := Simulate(tr, st.SimLayers(), DefaultPagerConfig(1000)); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"x 1 2\n", "1 -3\n", "1 2 2\n", "0 1\n", "1 99\n"} {
		tr, err := ReadTrace(bytes.NewBufferString(bad))
		if err == nil {
			_, err = Simulate(tr, st.SimLayers(), DefaultPagerConfig(1000))
		}
		if err == nil {
			t.Errorf("trace %q accepted", bad)
		}
	}
}

// pagedStore opens a store with a pager of budget bytes over f.
func pagedStore(t *testing.T, f *gguf.File, budget int64, mut func(*PagerConfig)) *Store {
	t.Helper()
	cfg := DefaultPagerConfig(budget)
	if mut != nil {
		mut(&cfg)
	}
	st, err := NewStore(f, StoreConfig{Threads: 2, Pager: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// TestStorePagerSameResults runs batches through a plain store and through
// paged stores with budgets that force evictions, each eviction method:
// the results are bit-identical and the books stay under budget.
func TestStorePagerSameResults(t *testing.T) {
	const nExp = 16
	f := testFile(t, 256, 256, nExp, []layerSpec{dense, {gguf.TypeQ4_K, gguf.TypeQ4_K, gguf.TypeQ6_K}, {gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	plain, err := NewStore(f, StoreConfig{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	size := plain.layers[1].bytes(0)
	for _, ev := range []Evict{EvictDrop, EvictPageOut, EvictDontNeed, EvictNone} {
		t.Run(ev.String(), func(t *testing.T) {
			st := pagedStore(t, f, 5*size, func(c *PagerConfig) { c.Evict = ev })
			rng := rand.New(rand.NewPCG(6, 6))
			for i := 0; i < 20; i++ {
				layer := 1 + i%2
				b := testBatch(rng, 1+i%3, 3, 256, nExp)
				if i%2 == 0 {
					b = withQ(t, plain, layer, b)
				}
				want := make([]float32, b.N*256)
				got := make([]float32, b.N*256)
				if err := plain.Forward(context.Background(), layer, b, want); err != nil {
					t.Fatal(err)
				}
				if err := st.Forward(context.Background(), layer, b, got); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("batch %d: the paged store's result differs", i)
				}
				checkInvariants(t, st.pager)
			}
			s := st.Stats()
			if s.ResidentBytes > s.Budget || s.Evictions == 0 || s.Misses == 0 || s.Forwards != 20 {
				t.Errorf("stats: %+v", s)
			}
			if _, err := st.ResidentBytes(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestStoreLoadRelease(t *testing.T) {
	f := testFile(t, 64, 32, 8, []layerSpec{dense, {gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	for _, paged := range []bool{false, true} {
		var st *Store
		if paged {
			st = pagedStore(t, f, 1<<20, func(c *PagerConfig) { c.Pin = map[int][]int{1: {0}} })
		} else {
			var err error
			if st, err = NewStore(f, StoreConfig{Threads: 1, Experts: map[int][]int{1: {}}}); err != nil {
				t.Fatal(err)
			}
			defer st.Close()
		}
		ctx := context.Background()
		out := make([]float32, 64)
		b := &Batch{N: 1, K: 2, Embd: 64, X: make([]float32, 64), Experts: []int32{3, 5}, Weights: []float32{0.5, 0.5}}
		if err := st.Load(ctx, 1, []int{3, 5}); err != nil {
			t.Fatal(err)
		}
		if !st.Holds(1, 3) || !st.Holds(1, 5) {
			t.Fatal("Load did not hold the experts")
		}
		if err := st.Forward(ctx, 1, b, out); err != nil {
			t.Fatal(err)
		}
		if err := st.Release(ctx, 1, []int{5, 0}); err != nil {
			t.Fatal(err)
		}
		if err := st.Forward(ctx, 1, b, out); !errors.Is(err, ErrUnknownExpert) {
			t.Errorf("Forward of a released expert: %v", err)
		}
		for _, bad := range [][]int{{8}, {-1}} {
			if err := st.Load(ctx, 1, bad); !errors.Is(err, ErrUnknownExpert) {
				t.Errorf("Load %v: %v", bad, err)
			}
		}
		if err := st.Load(ctx, 0, []int{1}); !errors.Is(err, ErrUnknownExpert) {
			t.Errorf("Load on a dense layer: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := st.Load(cctx, 1, []int{1}); !errors.Is(err, context.Canceled) {
			t.Errorf("Load with a cancelled context: %v", err)
		}
		if paged {
			checkInvariants(t, st.pager)
			if st.pager.ents[st.layers[1].base+5].resident || st.pager.ents[st.layers[1].base+0].pinned {
				t.Error("Release left expert 5 resident or expert 0 pinned")
			}
			if !st.pager.ents[st.layers[1].base+3].resident {
				t.Error("expert 3 not resident after Load")
			}
		}
	}
}

func TestPagerConfigValidate(t *testing.T) {
	f := testFile(t, 64, 32, 4, []layerSpec{{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	size := int64(3 * 32 * 68) // 3 Q8_0 matrices of 32 rows of 64
	for name, mut := range map[string]func(*PagerConfig){
		"budget":     func(c *PagerConfig) { c.Budget = 0 },
		"lambda":     func(c *PagerConfig) { c.Lambda = -1 },
		"policy":     func(c *PagerConfig) { c.Policy = 9 },
		"evict":      func(c *PagerConfig) { c.Evict = 9 },
		"top":        func(c *PagerConfig) { c.PredictTop = -1 },
		"pin layer":  func(c *PagerConfig) { c.Pin = map[int][]int{3: {0}} },
		"pin expert": func(c *PagerConfig) { c.Pin = map[int][]int{0: {4}} },
		"pin budget": func(c *PagerConfig) { c.Budget = size; c.Pin = map[int][]int{0: {0, 1}} },
	} {
		cfg := DefaultPagerConfig(1 << 20)
		mut(&cfg)
		if st, err := NewStore(f, StoreConfig{Threads: 1, Pager: &cfg}); err == nil {
			st.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	for _, s := range []string{"lru", "LFU", "lrfu"} {
		if _, err := ParsePolicy(s); err != nil {
			t.Error(err)
		}
	}
	for _, s := range []string{"drop", "pageout", "dontneed", "none"} {
		if e, err := ParseEvict(s); err != nil || e.String() != s {
			t.Error(s, err)
		}
	}
	if _, err := ParsePolicy("fifo"); err == nil {
		t.Error("fifo accepted")
	}
	if _, err := ParseEvict("burn"); err == nil {
		t.Error("burn accepted")
	}
}

func TestStorePagerAllocs(t *testing.T) {
	f := testFile(t, 64, 32, 16, []layerSpec{{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}, {gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	st := pagedStore(t, f, 6*3*32*68, nil)
	rng := rand.New(rand.NewPCG(9, 9))
	bs := []*Batch{testBatch(rng, 1, 4, 64, 16), testBatch(rng, 1, 4, 64, 16), testBatch(rng, 1, 4, 64, 16)}
	out := make([]float32, 64)
	ctx := context.Background()
	i := 0
	run := func() {
		if err := st.Forward(ctx, i%2, bs[i%3], out); err != nil {
			t.Fatal(err)
		}
		i++
	}
	for range 6 {
		run()
	}
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per Forward", n)
	}
	if s := st.Stats(); s.Evictions == 0 {
		t.Errorf("no evictions: %+v", s)
	}
}

func TestInnerPages(t *testing.T) {
	buf := make([]byte, 5*pageSize)
	in := innerPages(buf[10 : 3*pageSize+20])
	if len(in)%pageSize != 0 || len(in) > 3*pageSize {
		t.Errorf("inner pages of a 3-page range: %d bytes", len(in))
	}
	if len(innerPages(buf[1:pageSize])) != 0 || innerPages(nil) != nil {
		t.Error("a range within one page has inner pages")
	}
}

func TestAvailableMemory(t *testing.T) {
	m, err := AvailableMemory()
	if err != nil {
		t.Skip("no /proc/meminfo:", err)
	}
	if m.Available <= 0 {
		t.Errorf("available memory %d", m.Available)
	}
	f := testFile(t, 64, 32, 4, []layerSpec{{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	e, d := SplitBytes(f)
	if e != 3*4*32*68 || d != 0 {
		t.Errorf("SplitBytes: %d expert, %d dense", e, d)
	}
	if _, _, err := DefaultBudget(f, 1<<62); err == nil {
		t.Error("DefaultBudget with an impossible reserve succeeded")
	}
}
