package scheduler

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
	"github.com/inference-x/inference-x/model"
)

// generateAll submits every prompt at once to a scheduler of cfg over m
// (its slots, one per prompt, and cfg.MaxBatch) and returns each greedy
// generation of n tokens.
func generateAll(t *testing.T, m *model.Model, cfg Config, prompts [][]int32, n int) [][]int32 {
	t.Helper()
	cfg.Slots, cfg.Queue = len(prompts), len(prompts)
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var streams []*Stream
	for _, p := range prompts {
		st, err := s.Submit(context.Background(), &Request{Prompt: p, MaxTokens: n})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	out := make([][]int32, len(streams))
	for i, st := range streams {
		toks, end := collect(t, st)
		if end.Err != nil {
			t.Fatalf("stream %d: %v", i, end.Err)
		}
		out[i] = toks
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBatchInvariantGreedy is issue 17's finding 9: a temperature-0
// request's tokens must not depend on what else the scheduler decodes
// with it, nor on the prompt chunk. The request alone with batches of 1,
// 7, 64 and 512 tokens, and with 1 to 7 other requests of different
// lengths (prefilling and decoding in the same steps), generates the same
// tokens, on dense F32 and F16 weights (tinyBLAS in llama.cpp's mode) and a Q4_K
// MoE model, with both cache types.
func TestBatchInvariantGreedy(t *testing.T) {
	kernels.SetBatchInvariant(true)
	cases := []struct {
		rel string
		kv  model.KVType
		n   int
	}{
		// Before the fix this one's 74th token differed when two copies
		// of the request ran together (the decode products of two tokens
		// took tinyBLAS, one token vec_dot).
		{"models/stories260K/stories260K-F16.gguf", model.KVF32, 120},
		{"models/stories260K/stories260K.gguf", model.KVF16, 120},
		{"testdata/models/deepseek2-v3.F16.gguf", model.KVF32, 32},
		{"testdata/models/qwen3moe-small.Q4_K_M.gguf", model.KVF16, 24},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.rel), func(t *testing.T) {
			m := experttest.OpenModel(t, testenv.Shared(t, tc.rel))
			vocab := int32(m.Config.Vocab)
			prompt := func(n, salt int) []int32 {
				p := []int32{1}
				for i := 1; i < n; i++ {
					p = append(p, 2+int32((i*131+salt*17)%int(vocab-2)))
				}
				return p
			}
			target := prompt(8, 0)
			cfg := Config{Ctx: 256, KV: tc.kv, Threads: 2}
			cfg.MaxBatch = 512
			want := generateAll(t, m, cfg, [][]int32{target}, tc.n)[0]
			// Two identical requests at once (finding 9).
			for i, got := range generateAll(t, m, cfg, [][]int32{target, target}, tc.n) {
				if !equalTokens(got, want) {
					t.Errorf("copy %d of two at once: %v, alone %v", i, got, want)
				}
			}
			for _, mb := range []int{1, 7, 64} {
				cfg.MaxBatch = mb
				if got := generateAll(t, m, cfg, [][]int32{target}, tc.n)[0]; !equalTokens(got, want) {
					t.Errorf("alone, batch %d: %v, batch 512 %v", mb, got, want)
				}
			}
			for others := 1; others <= 7; others++ {
				prompts := [][]int32{}
				for k := 0; k < others; k++ {
					prompts = append(prompts, prompt(2+(k*13)%40, k+1))
				}
				at := others / 2
				prompts = append(prompts[:at], append([][]int32{target}, prompts[at:]...)...)
				cfg.MaxBatch = max([]int{7, 64, 512}[others%3], len(prompts))
				if got := generateAll(t, m, cfg, prompts, tc.n)[at]; !equalTokens(got, want) {
					t.Errorf("with %d others, batch %d: %v, alone %v", others, cfg.MaxBatch, got, want)
				}
			}
		})
	}
}

func equalTokens(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
