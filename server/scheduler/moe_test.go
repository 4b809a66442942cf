package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
)

// countingBackend records the rows of every experts call.
type countingBackend struct {
	inner experts.Backend
	mu    sync.Mutex
	rows  map[int][]int // layer -> N of each call
}

func (c *countingBackend) Forward(ctx context.Context, layer int, b *experts.Batch, out []float32) error {
	c.mu.Lock()
	c.rows[layer] = append(c.rows[layer], b.N)
	c.mu.Unlock()
	return c.inner.Forward(ctx, layer, b, out)
}

// TestMoEBatchedExpertCalls runs four concurrent greedy generations of a
// DeepSeek-V3-shaped MoE model: each reproduces llama.cpp's tokens, and
// every MoE layer gets exactly one experts call per step holding all four
// sequences' rows, so a router sends one RPC per node per layer per step.
func TestMoEBatchedExpertCalls(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	m := experttest.OpenModel(t, filepath.Join(dir, "deepseek2-v3.F32.gguf"))
	f := m.File
	var ref reference
	b, err := os.ReadFile(filepath.Join(dir, "deepseek2-v3.F32.generate.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	local, err := experts.NewLocal(f, experts.LocalConfig{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	cb := &countingBackend{inner: local, rows: map[int][]int{}}
	s, err := New(m, Config{Slots: 4, Ctx: 256, KV: model.KVF32, MaxBatch: 256, Queue: 4, Threads: 2}, WithExperts(cb))
	if err != nil {
		t.Fatal(err)
	}
	const n = 12
	var streams []*Stream
	for i := 0; i < 4; i++ {
		st, err := s.Submit(context.Background(), &Request{Prompt: ref.Prompt.Tokens, MaxTokens: n})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	start(t, s)
	for i, st := range streams {
		toks, end := collect(t, st)
		if end.Reason != FinishLength {
			t.Fatalf("stream %d: %+v", i, end)
		}
		for k := range toks {
			if toks[k] != ref.Generated.Tokens[k] {
				t.Fatalf("stream %d token %d: %d, llama.cpp %d", i, k, toks[k], ref.Generated.Tokens[k])
			}
		}
	}
	cb.mu.Lock()
	defer cb.mu.Unlock()
	if len(cb.rows) == 0 {
		t.Fatal("no experts calls")
	}
	for layer, calls := range cb.rows {
		// Step 1: the four prompts together; steps 2..n: one decode row each.
		if len(calls) != n {
			t.Errorf("layer %d: %d calls, want %d (one per step): %v", layer, len(calls), n, calls)
			continue
		}
		// The last layer's FFN runs on the rows whose logits are wanted
		// only (as llama.cpp's inp_out_ids): one per sequence.
		want := 4 * len(ref.Prompt.Tokens)
		if layer == m.Config.Layers-1 {
			want = 4
		}
		if calls[0] != want {
			t.Errorf("layer %d: prompt step has %d rows, want %d", layer, calls[0], want)
		}
		for i, rows := range calls[1:] {
			if rows != 4 {
				t.Errorf("layer %d decode step %d: %d rows, want 4", layer, i+1, rows)
			}
		}
	}
}

// faultBackend wraps a backend with a gate (Forward waits while it is
// shut, after reporting on entered) and a one-shot failure.
type faultBackend struct {
	inner   experts.Backend
	entered chan struct{}
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	err     error         // call number failAt fails with it
	failAt  int
	calls   int
}

func (f *faultBackend) Forward(ctx context.Context, layer int, b *experts.Batch, out []float32) error {
	f.mu.Lock()
	gate := f.gate
	var err error
	if f.calls == f.failAt {
		err = f.err
	}
	f.calls++
	f.mu.Unlock()
	if gate != nil {
		f.entered <- struct{}{}
		<-gate
	}
	if err != nil {
		return err
	}
	return f.inner.Forward(ctx, layer, b, out)
}

func (f *faultBackend) shut() {
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
}

func (f *faultBackend) open() {
	f.mu.Lock()
	close(f.gate)
	f.gate = nil
	f.mu.Unlock()
}

// failIn makes the call n calls from now fail with err (0: the next).
func (f *faultBackend) failIn(n int, err error) {
	f.mu.Lock()
	f.err, f.failAt = err, f.calls+n
	f.mu.Unlock()
}

func (f *faultBackend) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func newFaultScheduler(t *testing.T, cfg Config) (*Scheduler, *faultBackend) {
	t.Helper()
	m := experttest.OpenModel(t, filepath.Join(testenv.Shared(t, "testdata/models"), "deepseek2-v3.F32.gguf"))
	local, err := experts.NewLocal(m.File, experts.LocalConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	fb := &faultBackend{inner: local, entered: make(chan struct{}, 1024), failAt: -1}
	cfg.KV, cfg.Threads = model.KVF32, 1
	s, err := New(m, cfg, WithExperts(fb))
	if err != nil {
		t.Fatal(err)
	}
	return s, fb
}

// TestAdmitWhenSlotFree holds one request inside a blocked forward step:
// the free slots and the queue still take requests (slots+queue in
// flight), exactly the next one is refused, and all complete once the
// step goes on.
func TestAdmitWhenSlotFree(t *testing.T) {
	for _, c := range []struct{ slots, queue int }{{4, 0}, {2, 1}} {
		s, fb := newFaultScheduler(t, Config{Slots: c.slots, Ctx: 64, MaxBatch: 16, Queue: c.queue})
		fb.shut()
		start(t, s)
		req := &Request{Prompt: []int32{1, 5, 9}, MaxTokens: 3}
		first, err := s.Submit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		<-fb.entered // the first request's step is running and blocked
		streams := []*Stream{first}
		for i := 1; i < c.slots+c.queue; i++ {
			st, err := s.Submit(context.Background(), req)
			if err != nil {
				t.Fatalf("slots %d queue %d: request %d: %v", c.slots, c.queue, i+1, err)
			}
			streams = append(streams, st)
		}
		if _, err := s.Submit(context.Background(), req); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("slots %d queue %d: request %d: %v, want ErrQueueFull", c.slots, c.queue, c.slots+c.queue+1, err)
		}
		if st := s.Stats(); st.Busy != 1 || st.Queued != c.queue {
			t.Errorf("stats %+v, want 1 busy, %d queued", st, c.queue)
		}
		fb.open()
		for i, st := range streams {
			if toks, end := collect(t, st); len(toks) != 3 || end.Reason != FinishLength {
				t.Fatalf("stream %d: %d tokens, end %+v", i, len(toks), end)
			}
		}
		if s.InFlight() != 0 {
			t.Errorf("%d in flight after every stream ended", s.InFlight())
		}
	}
}

// TestFailedStepEndsOnlyItsSequences fails one forward step that holds
// the first request's prompt chunk but not the second request, whose
// prompt waits for room: the first ends with FinishError and the error,
// the second completes, and the loop serves the next request.
func TestFailedStepEndsOnlyItsSequences(t *testing.T) {
	s, fb := newFaultScheduler(t, Config{Slots: 2, Ctx: 64, MaxBatch: 4, Queue: 2})
	down := fmt.Errorf("router: layer 1 expert 7: %w", experts.ErrUnavailable)
	fb.failIn(0, down)
	a, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, 5, 9, 13, 17, 21}, MaxTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, 6, 10}, MaxTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s) // step 1: four of a's prompt tokens fill the batch
	if toks, end := collect(t, a); len(toks) != 0 || end.Reason != FinishError || !errors.Is(end.Err, experts.ErrUnavailable) {
		t.Fatalf("a: %v %+v", toks, end)
	}
	if toks, end := collect(t, b); len(toks) != 3 || end.Reason != FinishLength {
		t.Fatalf("b: %v %+v", toks, end)
	}
	// The same failure in a decode step (the third: prompts, then two
	// decode tokens) ends both sequences, each after two tokens.
	before := fb.count()
	if _, end := collect(t, mustSubmit(t, s, &Request{Prompt: []int32{1, 5}, MaxTokens: 1})); end.Reason != FinishLength {
		t.Fatalf("probe: %+v", end)
	}
	perStep := fb.count() - before // one call per MoE layer
	fb.shut()                      // hold the loop while both requests queue
	probe := mustSubmit(t, s, &Request{Prompt: []int32{1, 5}, MaxTokens: 1})
	<-fb.entered
	c := mustSubmit(t, s, &Request{Prompt: []int32{1, 5}, MaxTokens: 40})
	d := mustSubmit(t, s, &Request{Prompt: []int32{1, 6}, MaxTokens: 40})
	fb.failIn(perStep-1+2*perStep, down) // the rest of the probe's step, two steps of c and d
	fb.open()
	collect(t, probe)
	for _, st := range []*Stream{c, d} {
		if toks, end := collect(t, st); len(toks) != 2 || end.Reason != FinishError || !errors.Is(end.Err, experts.ErrUnavailable) {
			t.Fatalf("decode failure: %v %+v", toks, end)
		}
	}
	e, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, 5}, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	if toks, end := collect(t, e); len(toks) != 2 || end.Reason != FinishLength {
		t.Fatalf("after the failures: %v %+v", toks, end)
	}
	if !s.Running() || s.InFlight() != 0 || s.Stats().KVTokens != 0 {
		t.Errorf("running %v, in flight %d, stats %+v", s.Running(), s.InFlight(), s.Stats())
	}
}

func mustSubmit(t *testing.T, s *Scheduler, req *Request) *Stream {
	t.Helper()
	st, err := s.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
