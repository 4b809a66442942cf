package model

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// greedy generates n tokens after prompt with argmax sampling, one token
// per Forward after the prompt batch, as llama.cpp's reference does.
func greedy(t testing.TB, m *Model, prompt []int32, n int, kv KVType) []int32 {
	t.Helper()
	r := m.NewRunner(Options{Threads: 2, MaxBatch: 64})
	defer r.Close()
	seq, err := m.NewSequence(512, kv)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSampler(SamplerConfig{}, m.Config.Vocab)
	var next int32
	ctx := context.Background()
	if err := r.Eval(ctx, seq, prompt, false, func(_ int, l []float32) error { next = s.Sample(l); return nil }); err != nil {
		t.Fatal(err)
	}
	out := []int32{next}
	for len(out) < n {
		err := r.Eval(ctx, seq, out[len(out)-1:], false, func(_ int, l []float32) error { next = s.Sample(l); return nil })
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, next)
	}
	return out
}

// TestStoriesGreedy checks that stories260K generates exactly llama.cpp's
// greedy tokens for every prompt and type in models/stories260K/ref.
func TestStoriesGreedy(t *testing.T) {
	dir := testenv.Shared(t, "models/stories260K")
	refs, _ := filepath.Glob(filepath.Join(dir, "ref", "*.generate.json"))
	if len(refs) < 20 {
		t.Fatalf("found %d generate references", len(refs))
	}
	for _, p := range refs {
		t.Run(filepath.Base(p), func(t *testing.T) {
			var ref struct {
				Model     string                   `json:"model"`
				Prompt    struct{ Tokens []int32 } `json:"prompt"`
				Generated struct{ Tokens []int32 } `json:"generated"`
				Margin    []float32                `json:"top1_margin"`
			}
			readJSON(t, p, &ref)
			m := openModel(t, filepath.Join(dir, ref.Model))
			got := greedy(t, m, ref.Prompt.Tokens, len(ref.Generated.Tokens), KVF32)
			for i := range got {
				if got[i] != ref.Generated.Tokens[i] {
					t.Fatalf("token %d: %d, llama.cpp %d (reference margin there %.4g)", i, got[i], ref.Generated.Tokens[i], ref.Margin[i])
				}
			}
		})
	}
}

// TestStoriesPerplexity checks perplexity on war-and-peace-40k.txt's
// tokens against llama.cpp's for ctx 128 and 256 (F32 and quantized).
func TestStoriesPerplexity(t *testing.T) {
	dir := testenv.Shared(t, "models/stories260K")
	var toks struct{ Tokens []int32 }
	readJSON(t, filepath.Join(dir, "perplexity", "war-and-peace-40k.tokens.json"), &toks)
	for _, c := range []struct {
		file, ref string
	}{
		{"stories260K.gguf", "stories260K-F32.ctx128.json"},
		{"stories260K.gguf", "stories260K-F32.ctx256.json"},
		{"stories260K-Q8_0.gguf", "stories260K-Q8_0.ctx128.json"},
		{"stories260K-Q4_0.gguf", "stories260K-Q4_0.ctx256.json"},
	} {
		t.Run(c.ref, func(t *testing.T) {
			var ref struct {
				NCtx int     `json:"n_ctx"`
				PPL  float64 `json:"ppl"`
				Err  float64 `json:"ppl_stderr"`
			}
			readJSON(t, filepath.Join(dir, "perplexity", c.ref), &ref)
			m := openModel(t, filepath.Join(dir, c.file))
			r := m.NewRunner(Options{Threads: 2, MaxBatch: ref.NCtx})
			defer r.Close()
			res, err := r.Perplexity(context.Background(), toks.Tokens, PerplexityOptions{Ctx: ref.NCtx, BOS: 1, KV: KVF32})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("PPL %.4f +/- %.5f, llama.cpp %.4f +/- %.5f", res.PPL, res.StdErr, ref.PPL, ref.Err)
			if d := math.Abs(res.PPL-ref.PPL) / ref.PPL; d > 0.005 {
				t.Errorf("perplexity %.4f differs from llama.cpp's %.4f by %.2f%% (> 0.5%%)", res.PPL, ref.PPL, 100*d)
			}
		})
	}
}
