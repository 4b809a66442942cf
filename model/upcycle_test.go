package model

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	synthpkg "github.com/inference-x/inference-x/synth"
)

// TestUpcycledStoriesMatchesDense: stories260K upcycled with no noise to 64
// experts, top-8, computes the dense model's function in our engine: logits
// within 1e-4 × max|logit| at every position and the same greedy text,
// also from `make demo`'s prompt with both KV cache types (the demo prints
// the two texts as equal). It uses the committed copy of the model, so it
// runs on a fresh clone. (synth's TestUpcycleMatchesDense checks llama.cpp
// on the same file.)
func TestUpcycledStoriesMatchesDense(t *testing.T) {
	densePath := testenv.CommittedStories260K(t)
	moePath := filepath.Join(t.TempDir(), "stories260K-moe64.gguf")
	in, err := gguf.Open(densePath)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.Create(moePath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = synthpkg.Upcycle(context.Background(), in, w, synthpkg.UpcycleConfig{Experts: 64, ExpertsUsed: 8, Seed: 1})
	in.Close()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	dense, moe := openModel(t, densePath), openModel(t, moePath)
	if moe.Config.Experts != 64 || moe.Config.ExpertsUsed != 8 || dense.Config.Experts != 0 {
		t.Fatalf("experts: upcycled %d (top %d), dense %d", moe.Config.Experts, moe.Config.ExpertsUsed, dense.Config.Experts)
	}

	prompt := []int32{1, 403, 407, 261, 300, 500, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	logits := func(m *Model) [][]float32 {
		r := m.NewRunner(Options{Threads: 2, MaxBatch: 64})
		defer r.Close()
		seq, err := m.NewSequence(128, KVF32)
		if err != nil {
			t.Fatal(err)
		}
		var out [][]float32
		err = r.Eval(context.Background(), seq, prompt, true, func(_ int, l []float32) error {
			out = append(out, append([]float32(nil), l...))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	want, got := logits(dense), logits(moe)
	if len(got) != len(prompt) || len(want) != len(prompt) {
		t.Fatalf("%d and %d logit rows for %d tokens", len(got), len(want), len(prompt))
	}
	for p := range want {
		var maxRef, maxDiff float64
		for v, x := range want[p] {
			maxRef = max(maxRef, math.Abs(float64(x)))
			maxDiff = max(maxDiff, math.Abs(float64(x-got[p][v])))
		}
		if maxDiff > 1e-4*maxRef {
			t.Errorf("position %d: max |diff| %.3g > 1e-4 × max |logit| %.3g", p, maxDiff, maxRef)
		}
	}

	once := []int32{1, 403, 407, 261, 378} // <s> Once upon a time
	for _, c := range []struct {
		name   string
		prompt []int32
		n      int
		kv     KVType
	}{
		{"bos f32", prompt[:1], 96, KVF32},
		{"once f32", once, 64, KVF32},
		{"once f16 (make demo)", once, 64, KVF16},
	} {
		gd := greedy(t, dense, c.prompt, c.n, c.kv)
		gm := greedy(t, moe, c.prompt, c.n, c.kv)
		for i := range gd {
			if gd[i] != gm[i] {
				t.Fatalf("%s: greedy token %d: upcycled %d, dense %d", c.name, i, gm[i], gd[i])
			}
		}
	}
}
