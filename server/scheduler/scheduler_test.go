package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
)

func openStories(t testing.TB, name string) *model.Model {
	t.Helper()
	return experttest.OpenModel(t, filepath.Join(testenv.Shared(t, "models/stories260K"), name))
}

type reference struct {
	Prompt    struct{ Tokens []int32 } `json:"prompt"`
	Generated struct{ Tokens []int32 } `json:"generated"`
}

func readRef(t testing.TB, name string) reference {
	t.Helper()
	var r reference
	b, err := os.ReadFile(filepath.Join(testenv.Shared(t, "models/stories260K/ref"), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func start(t testing.TB, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func collect(t testing.TB, st *Stream) ([]int32, Event) {
	t.Helper()
	var toks []int32
	for ev := range st.Events {
		if ev.Done {
			return toks, ev
		}
		toks = append(toks, ev.Token)
	}
	t.Fatal("stream closed without a Done event")
	return nil, Event{}
}

// TestConcurrentGreedyMatchesLlamaCpp runs the three llama.cpp greedy
// references at once, several copies each, in fewer slots than requests
// and with a batch smaller than the prompts (chunked prefill mixed with
// other sequences' decode steps): every stream must produce exactly
// llama.cpp's tokens.
func TestConcurrentGreedyMatchesLlamaCpp(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	cfg := Config{Slots: 3, Ctx: 256, KV: model.KVF32, MaxBatch: 8, Queue: 16, Threads: 2}
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	refs := []reference{
		readRef(t, "stories260K-F32.bos.generate.json"),
		readRef(t, "stories260K-F32.once.generate.json"),
		readRef(t, "stories260K-F32.lily.generate.json"),
	}
	var wg sync.WaitGroup
	for copyN := 0; copyN < 2; copyN++ {
		for i, ref := range refs {
			n := min(len(ref.Generated.Tokens), 40)
			st, err := s.Submit(context.Background(), &Request{Prompt: ref.Prompt.Tokens, MaxTokens: n})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				toks, end := collect(t, st)
				if end.Reason != FinishLength || end.Err != nil || end.Generated != n || end.PromptTokens != len(ref.Prompt.Tokens) {
					t.Errorf("ref %d: end %+v", i, end)
				}
				for k := range toks {
					if toks[k] != ref.Generated.Tokens[k] {
						t.Errorf("ref %d copy %d: token %d is %d, llama.cpp %d", i, copyN, k, toks[k], ref.Generated.Tokens[k])
						return
					}
				}
			}()
		}
	}
	wg.Wait()
}

func TestQueueFull(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	s, err := New(m, Config{Slots: 1, Ctx: 64, MaxBatch: 8, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Run is not started: one request takes the free slot, two more the
	// queue, and the fourth is refused.
	req := &Request{Prompt: []int32{1, 403}, MaxTokens: 4}
	for i := 0; i < 3; i++ {
		if _, err := s.Submit(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Submit(context.Background(), req); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fourth submit: %v, want ErrQueueFull", err)
	}
	if st := s.Stats(); s.InFlight() != 3 || st.Queued != 2 || st.Busy != 0 {
		t.Fatalf("in flight %d, stats %+v", s.InFlight(), st)
	}
	if _, err := s.Submit(context.Background(), &Request{Prompt: make([]int32, 64)}); !errors.Is(err, ErrPromptTooLong) {
		t.Fatalf("long prompt: %v, want ErrPromptTooLong", err)
	}
	if _, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, 9999}}); err == nil {
		t.Fatal("out-of-vocabulary token accepted")
	}
	// Starting and stopping the loop ends the queued requests.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Submit(context.Background(), req); !errors.Is(err, ErrStopped) {
		t.Fatalf("submit after stop: %v", err)
	}
}

// TestCancel cancels a long generation mid-stream; the slot is then free
// for the next request (one slot only).
func TestCancel(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	s, err := New(m, Config{Slots: 1, Ctx: 256, MaxBatch: 8, Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := s.Submit(ctx, &Request{Prompt: []int32{1}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var end Event
	for ev := range st.Events {
		if ev.Done {
			end = ev
			break
		}
		if n++; n == 3 {
			cancel()
		}
	}
	if end.Reason != FinishCancelled || !errors.Is(end.Err, context.Canceled) || end.Generated >= 250 {
		t.Fatalf("end %+v", end)
	}
	eog := func(tok int32) bool { return tok == 403 } // the first greedy token after BOS
	st, err = s.Submit(context.Background(), &Request{Prompt: []int32{1}, IsEOG: eog})
	if err != nil {
		t.Fatal(err)
	}
	toks, end := collect(t, st)
	if len(toks) != 0 || end.Reason != FinishStop {
		t.Fatalf("after cancel: %v %+v", toks, end)
	}
}

// TestStepAllocs checks that a decode step over several sequences
// allocates nothing.
func TestStepAllocs(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	s, err := New(m, Config{Slots: 4, Ctx: 512, MaxBatch: 16, Queue: 4, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.runner.Close()
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		j := &job{ctx: ctx, req: &Request{Prompt: []int32{1, int32(300 + i)},
			Sampler: model.SamplerConfig{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: uint64(i)}},
			events: make(chan Event, 512)}
		s.admit(j)
	}
	step := func() {
		if err := s.step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		step()
	}
	if n := testing.AllocsPerRun(50, step); n != 0 {
		t.Errorf("%.1f allocations per step, want 0", n)
	}
	for i := range s.slots {
		if s.slots[i].job == nil {
			t.Fatalf("slot %d finished early", i)
		}
	}
}

type stepLog struct {
	steps []struct{ prompt, decode, seqs int }
}

func (l *stepLog) Step(prompt, decode, seqs int, _ time.Duration) {
	l.steps = append(l.steps, struct{ prompt, decode, seqs int }{prompt, decode, seqs})
}
func (l *stepLog) Queue(int) {}
func (l *stepLog) Idle()     {}

// TestOneForwardPerStep queues four requests before the loop starts: the
// first step evaluates all four prompts together and every later step
// decodes one token of each of the four sequences in the same Forward,
// so a MoE layer sees all of them in one experts call.
func TestOneForwardPerStep(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	log := &stepLog{}
	s, err := New(m, Config{Slots: 4, Ctx: 128, MaxBatch: 32, Queue: 4}, WithObserver(log))
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	var streams []*Stream
	for i := 0; i < 4; i++ {
		st, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, int32(300 + i), 400}, MaxTokens: n})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	start(t, s)
	for _, st := range streams {
		if toks, end := collect(t, st); len(toks) != n || end.Reason != FinishLength {
			t.Fatalf("%d tokens, end %+v", len(toks), end)
		}
	}
	// Run's goroutine wrote log.steps before closing the streams.
	if len(log.steps) != n {
		t.Fatalf("%d steps, want %d: %+v", len(log.steps), n, log.steps)
	}
	for i, st := range log.steps {
		want := struct{ prompt, decode, seqs int }{0, 4, 4}
		if i == 0 {
			want.prompt, want.decode = 12, 0
		}
		if st != want {
			t.Errorf("step %d: %+v, want %+v", i, st, want)
		}
	}
}
