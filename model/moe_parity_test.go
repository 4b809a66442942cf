package model

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// moeModels are the MoE models of ../shared/testdata/models.
var moeModels = []string{"llama-moe", "qwen3moe-small", "deepseek2-384", "deepseek2-v3"}

// TestParityMoE checks batch-mode logits against llama.cpp for every
// variant of every MoE model, and the long-prompt references.
func TestParityMoE(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	for _, name := range moeModels {
		refs, _ := filepath.Glob(filepath.Join(dir, name+".*.logits*.json"))
		if len(refs) == 0 {
			t.Fatalf("no references for %s", name)
		}
		for _, path := range refs {
			base := filepath.Base(path)
			if strings.Contains(base, ".incremental.") {
				continue
			}
			t.Run(base, func(t *testing.T) {
				ref := readRef(t, path)
				m := openModel(t, filepath.Join(dir, ref.Model))
				got := evalPrompt(t, m, ref.Tokens, KVF32)
				compareLogits(t, ref, got, strings.Contains(ref.Model, ".F32."))
			})
		}
	}
}

// TestParityMoEIncremental feeds the prompt one token per Forward through
// the cache, as the .logits.incremental.json references do.
func TestParityMoEIncremental(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	refs, _ := filepath.Glob(filepath.Join(dir, "*.F32.logits.incremental.json"))
	n := 0
	for _, path := range refs {
		base := filepath.Base(path)
		if !isMoERef(base) {
			continue
		}
		n++
		t.Run(base, func(t *testing.T) {
			ref := readRef(t, path)
			m := openModel(t, filepath.Join(dir, ref.Model))
			got := evalIncremental(t, m, ref.Tokens, KVF32)
			compareLogits(t, ref, got, true)
		})
	}
	if n < 3 {
		t.Fatalf("found %d incremental MoE references", n)
	}
}

func isMoERef(base string) bool {
	for _, name := range moeModels {
		if strings.HasPrefix(base, name+".") {
			return true
		}
	}
	return false
}

// evalIncremental runs tokens one per Forward and returns every
// position's logits.
func evalIncremental(t testing.TB, m *Model, tokens []int32, kv KVType) [][]float32 {
	t.Helper()
	r := m.NewRunner(Options{Threads: 2, MaxBatch: 8})
	defer r.Close()
	seq, err := m.NewSequence(512, kv)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for _, tok := range tokens {
		err := r.Eval(context.Background(), seq, []int32{tok}, false, func(_ int, l []float32) error {
			out = append(out, append([]float32(nil), l...))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestGenerateMoE checks greedy generation against llama.cpp's for every
// MoE generate reference, up to the first difference at a step whose
// reference margin is too thin for our error (a flip there is not a bug).
func TestGenerateMoE(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	for _, name := range moeModels {
		refs, _ := filepath.Glob(filepath.Join(dir, name+".*.generate.json"))
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
				// A flip where the reference margin is within our logit
				// error is not a bug: F32 files agree to ~1e-5, quantized
				// ones (until the kernels match ggml's bits) to ~0.1.
				thin := float32(0.2)
				if strings.Contains(ref.Model, ".F32.") {
					thin = 1e-3
				}
				for i := range got {
					if got[i] == ref.Generated.Tokens[i] {
						continue
					}
					if ref.Margin[i] < thin {
						t.Logf("token %d: %d, llama.cpp %d at a reference margin of %.3g: stopping", i, got[i], ref.Generated.Tokens[i], ref.Margin[i])
						return
					}
					t.Fatalf("token %d: %d, llama.cpp %d (reference margin there %.4g)", i, got[i], ref.Generated.Tokens[i], ref.Margin[i])
				}
				t.Logf("all %d tokens match", len(got))
			})
		}
	}
}
