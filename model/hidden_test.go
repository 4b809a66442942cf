package model

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestHiddenIsLogitsInput checks that Hidden returns the rows the LM head
// turns into Forward's logits: multiplying them by the output matrix gives
// the same logits, for every row of a prompt batch.
func TestHiddenIsLogitsInput(t *testing.T) {
	m := openModel(t, filepath.Join(testenv.Shared(t, "models/stories260K"), "stories260K.gguf"))
	prompt := []int32{1, 365, 254, 322, 435, 351, 304, 278}
	run := func(hidden bool) []float32 {
		r := m.NewRunner(Options{Threads: 2, MaxBatch: 16})
		defer r.Close()
		seq, err := m.NewSequence(64, KVF32)
		if err != nil {
			t.Fatal(err)
		}
		var b Batch
		for i, tok := range prompt {
			b.Add(seq, tok, i, true)
		}
		var out []float32
		if hidden {
			h, err := r.Hidden(context.Background(), &b)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != len(prompt)*m.Config.Embd {
				t.Fatalf("hidden has %d floats, want %d", len(h), len(prompt)*m.Config.Embd)
			}
			x := append([]float32(nil), h...)
			out = make([]float32, len(prompt)*m.Config.Vocab)
			r.matmul(out, m.output, x, len(prompt))
		} else {
			l, err := r.Forward(context.Background(), &b)
			if err != nil {
				t.Fatal(err)
			}
			out = append([]float32(nil), l...)
		}
		if seq.Len != len(prompt) {
			t.Errorf("sequence length %d after the batch, want %d", seq.Len, len(prompt))
		}
		return out
	}
	want, got := run(false), run(true)
	for i := range want {
		if d := math.Abs(float64(want[i] - got[i])); d > 1e-4 {
			t.Fatalf("logit %d: head(hidden) = %g, Forward = %g", i, got[i], want[i])
		}
	}
}
