package model

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
)

// recorder is an experts.Backend that checks and records what the model
// sends, then delegates.
type recorder struct {
	t    *testing.T
	next experts.Backend
	mu   sync.Mutex
	rows map[int]int // per layer
}

func (r *recorder) Forward(ctx context.Context, layer int, b *experts.Batch, out []float32) error {
	r.mu.Lock()
	r.rows[layer] += b.N
	r.mu.Unlock()
	if b.Q != nil {
		// Q must be exactly X quantized to QType.
		rb := kernels.ActivationBytes(b.QType, b.Embd)
		want := make([]byte, rb)
		for i := 0; i < b.N; i++ {
			if err := kernels.QuantizeActivation(b.QType, want, b.X[i*b.Embd:(i+1)*b.Embd]); err != nil {
				r.t.Error(err)
			}
			if !slices.Equal(want, b.Q[i*rb:(i+1)*rb]) {
				r.t.Errorf("layer %d row %d: Q is not X quantized to %v", layer, i, b.QType)
			}
		}
	}
	for i := 0; i < b.N; i++ {
		ids := b.Experts[i*b.K : (i+1)*b.K]
		for k, e := range ids {
			if slices.Contains(ids[:k], e) {
				r.t.Errorf("layer %d row %d: expert %d chosen twice: %v", layer, i, e, ids)
			}
		}
	}
	return r.next.Forward(ctx, layer, b, out)
}

// TestExpertBackendAndCounts runs the prompt with an injected backend (a
// shared Local with its own threads, behind a recorder) and checks that
// the logits equal the default in-process backend's bit for bit, what
// crosses the boundary, and the expert counts.
func TestExpertBackendAndCounts(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	for _, name := range []string{"deepseek2-v3.Q4_0", "qwen3moe-small.Q8_0", "llama-moe.Q4_K_M", "deepseek2-384.F16"} {
		t.Run(name, func(t *testing.T) {
			ref := readRef(t, filepath.Join(dir, name+".logits.json"))
			m := openModel(t, filepath.Join(dir, ref.Model))
			local, err := experts.NewLocal(m.File, experts.LocalConfig{Threads: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			rec := &recorder{t: t, next: local, rows: map[int]int{}}

			run := func(opt Options) ([]float32, [][]uint64) {
				r := m.NewRunner(opt)
				defer r.Close()
				seq, err := m.NewSequence(64, KVF32)
				if err != nil {
					t.Fatal(err)
				}
				var b Batch
				for i, tok := range ref.Tokens {
					b.Add(seq, tok, i, true)
				}
				logits, err := r.Forward(context.Background(), &b)
				if err != nil {
					t.Fatal(err)
				}
				return slices.Clone(logits), r.ExpertCounts()
			}
			want, counts := run(Options{Threads: 2, MaxBatch: 32})
			got, counts2 := run(Options{Threads: 2, MaxBatch: 32, Experts: rec})
			if !slices.Equal(got, want) {
				t.Error("logits through an injected backend differ from the default backend's")
			}
			if !slices.EqualFunc(counts, counts2, slices.Equal) {
				t.Error("expert counts differ between backends")
			}
			c := &m.Config
			for l, lc := range counts {
				_, moe := m.layers[l].ffn.(*moeFFN)
				if !moe {
					if lc != nil {
						t.Errorf("dense layer %d has counts", l)
					}
					continue
				}
				var sum uint64
				for _, v := range lc {
					sum += v
				}
				if n := len(ref.Tokens); sum != uint64(n*c.ExpertsUsed) || rec.rows[l] != n {
					t.Errorf("layer %d: %d selections over %d rows, want %d x %d", l, sum, rec.rows[l], n, c.ExpertsUsed)
				}
			}
		})
	}
}

// TestExpertCountsReset checks counting across Forward calls and Reset.
func TestExpertCountsReset(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	m := openModel(t, filepath.Join(dir, "deepseek2-384.Q8_0.gguf"))
	r := m.NewRunner(Options{Threads: 1, MaxBatch: 4})
	defer r.Close()
	seq, _ := m.NewSequence(16, KVF32)
	if err := r.Eval(context.Background(), seq, []int32{688, 285, 596, 615, 369, 595}, false, func(int, []float32) error { return nil }); err != nil {
		t.Fatal(err)
	}
	c := r.ExpertCounts()
	if len(c) != 2 || c[0] != nil || len(c[1]) != 384 {
		t.Fatalf("counts shape: %d layers", len(c))
	}
	var sum uint64
	for _, v := range c[1] {
		sum += v
	}
	// Layer 1 is the last: like llama.cpp (inp_out_ids) it routes only
	// the rows whose logits Forward returns, one per batch (MaxBatch 4
	// splits the 6 tokens in two).
	if sum != 2*8 {
		t.Errorf("%d selections for 2 output rows x 8", sum)
	}
	r.ResetExpertCounts()
	for _, v := range r.ExpertCounts()[1] {
		if v != 0 {
			t.Fatal("counts not reset")
		}
	}
	dense := openModel(t, filepath.Join(dir, "llama-dense.Q8_0.gguf")).NewRunner(Options{Threads: 1})
	defer dense.Close()
	if dense.ExpertCounts() != nil {
		t.Error("a dense model has expert counts")
	}
}

// TestRouting checks the selection rules on hand-made scores.
func TestRouting(t *testing.T) {
	logit := func(p float32) float32 { return -log32(1/p - 1) } // inverse sigmoid
	cases := []struct {
		name    string
		rt      routing
		logits  []float32
		ids     []int32
		weights []float32
	}{
		{
			name:   "softmax top-2, renormalised",
			rt:     routing{experts: 4, used: 2, gating: GatingSoftmax, norm: true},
			logits: []float32{0, 2, 1, 2.5},
			ids:    []int32{3, 1},
		},
		{
			// The bias moves expert 0 into the selection; its weight
			// stays its unbiased probability.
			name:    "sigmoid with selection bias, scaled",
			rt:      routing{experts: 4, used: 2, gating: GatingSigmoid, bias: []float32{0.5, 0, 0, 0}, scale: 2},
			logits:  []float32{logit(0.2), logit(0.6), logit(0.5), logit(0.3)},
			ids:     []int32{0, 1},
			weights: []float32{0.4, 1.2},
		},
		{
			// Groups of 2: {0,1} sum 1.1, {2,3} 1.0, {4,5} 1.3. With 2
			// groups used, expert 2 (0.9, the best single score) is out.
			name:    "group-limited",
			rt:      routing{experts: 6, used: 3, gating: GatingSigmoid, groups: 3, groupsUsed: 2},
			logits:  []float32{logit(0.6), logit(0.5), logit(0.9), logit(0.1), logit(0.7), logit(0.6)},
			ids:     []int32{4, 0, 5},
			weights: []float32{0.7, 0.6, 0.6},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids := make([]int32, c.rt.used)
			w := make([]float32, c.rt.used)
			sel := make([]float32, c.rt.experts+c.rt.groups)
			c.rt.choose(slices.Clone(c.logits), sel, ids, w)
			if !slices.Equal(ids, c.ids) {
				t.Fatalf("experts %v, want %v", ids, c.ids)
			}
			if c.weights != nil {
				for i := range w {
					if d := w[i] - c.weights[i]; d > 1e-6 || d < -1e-6 {
						t.Errorf("weights %v, want %v", w, c.weights)
					}
				}
			}
			if c.rt.norm {
				var s float32
				for _, v := range w {
					s += v
				}
				if d := s - 1; d > 1e-6 || d < -1e-6 {
					t.Errorf("renormalised weights sum to %v", s)
				}
			}
		})
	}
}
