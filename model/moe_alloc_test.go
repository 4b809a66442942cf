package model

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestDecodeAllocsMoE checks that one decode step (one token through the
// cache) allocates nothing once the Runner's buffers exist, for MLA+MoE
// (deepseek2-384), the GQA MoE models and the dense GQA model.
func TestDecodeAllocsMoE(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	for _, name := range []string{"deepseek2-384.F32", "deepseek2-384.Q8_0", "deepseek2-v3.Q4_0", "qwen3moe-small.Q8_0", "llama-moe.Q4_K_M", "llama-dense.Q4_K_M"} {
		for _, kv := range []KVType{KVF32, KVF16} {
			t.Run(name+"/"+kv.String(), func(t *testing.T) {
				m := openModel(t, filepath.Join(dir, name+".gguf"))
				r := m.NewRunner(Options{Threads: 2, MaxBatch: 16})
				defer r.Close()
				seq, err := m.NewSequence(256, kv)
				if err != nil {
					t.Fatal(err)
				}
				ctx := context.Background()
				var b Batch
				step := func() {
					b.Reset()
					b.Add(seq, 300, seq.Len, true)
					if _, err := r.Forward(ctx, &b); err != nil {
						t.Fatal(err)
					}
				}
				// Warm up: the prompt batch, then a few steps.
				for i := 0; i < 4; i++ {
					b.Add(seq, int32(285+i), i, i == 3)
				}
				if _, err := r.Forward(ctx, &b); err != nil {
					t.Fatal(err)
				}
				step()
				if n := testing.AllocsPerRun(50, step); n != 0 {
					t.Errorf("%v allocations per decode step", n)
				}
			})
		}
	}
}
