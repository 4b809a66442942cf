package scheduler

import (
	"context"
	"encoding/json"
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
