package model

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestDecodeAllocs checks that one decode step (Forward of one token and
// sampling) allocates nothing once the runner is warm.
func TestDecodeAllocs(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "stories260K-Q8_0.gguf"} {
		m := openModel(t, filepath.Join(testenv.Shared(t, "models/stories260K"), name))
		for _, kv := range []KVType{KVF16, KVF32} {
			r := m.NewRunner(Options{Threads: 2, MaxBatch: 8})
			seq, _ := m.NewSequence(256, kv)
			s, _ := NewSampler(SamplerConfig{Temperature: 0.8, TopK: 40, TopP: 0.9, MinP: 0.05, Repeat: 1.1, Seed: 1}, m.Config.Vocab)
			var b Batch
			tok := int32(1)
			step := func() {
				b.Reset()
				b.Add(seq, tok, seq.Len, true)
				logits, err := r.Forward(context.Background(), &b)
				if err != nil {
					t.Fatal(err)
				}
				tok = s.Sample(logits)
				s.Accept(tok)
			}
			for i := 0; i < 4; i++ {
				step()
			}
			if n := testing.AllocsPerRun(50, step); n != 0 {
				t.Errorf("%s kv %v: %.1f allocations per decode step, want 0", name, kv, n)
			}
			r.Close()
		}
	}
}
