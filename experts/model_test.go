package experts_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/synth"
)

var (
	synthOnce sync.Once
	synthPath string
	synthErr  error
)

// synthModel writes (once per test run) a small Kimi-K2-like model:
// deepseek2 with MLA, 32 experts top-4 in 4 layers (one leading dense),
// sigmoid routing with a selection bias.
func synthModel(t *testing.T) string {
	t.Helper()
	synthOnce.Do(func() {
		c, err := synth.DefaultConfig("deepseek2")
		if err != nil {
			synthErr = err
			return
		}
		c.Layers, c.Experts, c.ExpertsUsed, c.ExpertGroups, c.GroupsUsed = 4, 32, 4, 1, 1
		dir, err := os.MkdirTemp("", "ix-experts-test-")
		if err != nil {
			synthErr = err
			return
		}
		synthPath = filepath.Join(dir, "ds2.Q8_0.gguf")
		_, synthErr = synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 5, Threads: 2}, synthPath)
	})
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return synthPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if synthPath != "" {
		os.RemoveAll(filepath.Dir(synthPath))
	}
	os.Exit(code)
}

// decode runs a prompt and n greedy steps, returning the tokens and every
// step's logits.
func decode(t *testing.T, m *model.Model, backend experts.Backend, n int) ([]int32, [][]float32) {
	t.Helper()
	r := m.NewRunner(model.Options{Threads: 2, MaxBatch: 8, Experts: backend})
	defer r.Close()
	seq, err := m.NewSequence(128, model.KVF32)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var toks []int32
	var logits [][]float32
	var b model.Batch
	for i, tok := range []int32{1, 300, 301, 302, 303} {
		b.Add(seq, tok, i, i == 4)
	}
	for step := 0; step < n; step++ {
		l, err := r.Forward(ctx, &b)
		if err != nil {
			t.Fatal(err)
		}
		logits = append(logits, slices.Clone(l))
		next := int32(slices.Index(l, slices.Max(l)))
		toks = append(toks, next)
		b.Reset()
		b.Add(seq, next, seq.Len, true)
	}
	return toks, logits
}

// TestPagedDecode decodes a synthetic deepseek2 model with the default
// backend and with paged stores whose budget holds a fifth of the
// experts: the logits agree bit for bit, the pager evicts, and its
// next-layer prediction is better than chance.
func TestPagedDecode(t *testing.T) {
	path := synthModel(t)
	m := experttest.OpenModel(t, path)
	f := m.File
	wantToks, wantLogits := decode(t, m, nil, 16)
	expertBytes, _ := experts.SplitBytes(f)
	for _, pol := range []experts.Policy{experts.PolicyLRFU, experts.PolicyLRU, experts.PolicyLFU} {
		cfg := experts.DefaultPagerConfig(expertBytes / 5)
		cfg.Policy, cfg.PredictTop = pol, 5
		st, err := experts.NewStore(f, experts.StoreConfig{Threads: 2, Pager: &cfg})
		if err != nil {
			t.Fatal(err)
		}
		toks, logits := decode(t, m, st, 16)
		if !slices.Equal(toks, wantToks) {
			t.Fatalf("%v: tokens %v, want %v", pol, toks, wantToks)
		}
		for i := range logits {
			if !slices.Equal(logits[i], wantLogits[i]) {
				t.Fatalf("%v: step %d logits differ", pol, i)
			}
		}
		s := st.Stats()
		st.Close()
		if s.Evictions == 0 || s.ResidentBytes > s.Budget || s.Predicted == 0 {
			t.Errorf("%v: stats %+v", pol, s)
		}
		// 5 of 32 experts predicted per row: chance precision is 4/32.
		if p := s.PredictPrecision(); p < 0.25 {
			t.Errorf("%v: prediction precision %.2f", pol, p)
		}
		t.Logf("%v: hit rate %.2f, prediction precision %.2f recall %.2f", pol, s.HitRate(), s.PredictPrecision(), s.PredictRecall())
	}
}

// TestPagedDecodeAllocs checks that a decode step through the pager with
// prediction allocates nothing once warm.
func TestPagedDecodeAllocs(t *testing.T) {
	path := synthModel(t)
	m := experttest.OpenModel(t, path)
	f := m.File
	expertBytes, _ := experts.SplitBytes(f)
	cfg := experts.DefaultPagerConfig(expertBytes / 4)
	st, err := experts.NewStore(f, experts.StoreConfig{Threads: 2, Pager: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := m.NewRunner(model.Options{Threads: 2, MaxBatch: 8, Experts: st})
	defer r.Close()
	seq, err := m.NewSequence(256, model.KVF16)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var b model.Batch
	tok := int32(300)
	step := func() {
		b.Reset()
		b.Add(seq, tok, seq.Len, true)
		l, err := r.Forward(ctx, &b)
		if err != nil {
			t.Fatal(err)
		}
		tok = int32(slices.Index(l, slices.Max(l)))
	}
	for range 8 {
		step()
	}
	if n := testing.AllocsPerRun(50, step); n != 0 {
		t.Errorf("%v allocations per decode step", n)
	}
}
