package experts_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/synth"
)

// kimiShaped writes a reduced Kimi-K2-shaped model into dir: the
// kimi-k2-mini preset's structure (deepseek2 MLA with q_lora, sigmoid
// routing with a selection bias, one shared expert, one leading dense
// layer, YaRN) with 128 experts top-8 in 4 MoE layers, 256 wide.
func kimiShaped(t *testing.T, dir string) string {
	t.Helper()
	c, err := synth.Preset("kimi-k2-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.Vocab = 5, 256, 512, 4, 2048
	c.Experts, c.ExpertsUsed, c.ExpertFF = 128, 8, 128
	c.QLoraRank, c.KVLoraRank, c.RopeDim, c.NopeDim, c.VHeadDim = 128, 128, 32, 64, 64
	path := filepath.Join(dir, "kimi-shaped.Q8_0.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 11, Threads: 2}, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// dropPageCache writes back and drops path's pages from the page cache
// (they must not be mapped), so a run starts cold.
func dropPageCache(t *testing.T, path string) {
	t.Helper()
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(fd.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

// greedy runs an 8-token prompt and n greedy steps over the model in
// path, with backend (nil: the runner's own unpaged experts) made from
// the opened file. After every step it calls check. It returns the
// tokens and every step's logits.
func greedy(t *testing.T, path string, n int, backend func(*gguf.File) *experts.Store, check func(step int)) ([]int32, [][]float32) {
	t.Helper()
	m := experttest.OpenModel(t, path)
	f := m.File
	opt := model.Options{Threads: 2, MaxBatch: 8}
	if backend != nil {
		st := backend(f)
		defer st.Close()
		opt.Experts = st
	}
	r := m.NewRunner(opt)
	defer r.Close()
	seq, err := m.NewSequence(64, model.KVF32)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var b model.Batch
	for i, tok := range []int32{1, 300, 301, 302, 303, 304, 305, 306} {
		b.Add(seq, tok, i, i == 7)
	}
	var toks []int32
	var logits [][]float32
	for step := range n {
		l, err := r.Forward(ctx, &b)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		logits = append(logits, slices.Clone(l))
		next := int32(slices.Index(l, slices.Max(l)))
		toks = append(toks, next)
		if check != nil {
			check(step)
		}
		b.Reset()
		b.Add(seq, next, seq.Len, true)
	}
	return toks, logits
}

// TestKimiShapedUnderBudget is issue 8's acceptance test in miniature: a
// Kimi-K2-shaped model whose pager budget is an eighth of its expert
// bytes decodes to completion with the same greedy tokens, and the same
// logits bit for bit, as an unconstrained run. After every decode step
// the pager's books hold at most the budget plus two layers' top-k in
// flight. When the page cache can be dropped (not on tmpfs), the kernel
// agrees (mincore over the pages inside expert slices): it holds no more
// than that plus the expert pages already resident when the store
// opened (read around the dense tensors), which the pager never used.
func TestKimiShapedUnderBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("synthesises a 55 MB model")
	}
	path := kimiShaped(t, t.TempDir())
	const steps = 32
	wantToks, wantLogits := greedy(t, path, steps, nil, nil)

	var (
		st                  *experts.Store
		budget, expertBytes int64
		inFlight, coldStart int64
		maxBooks, maxKernel int64
	)
	dropPageCache(t, path)
	toks, logits := greedy(t, path, steps, func(f *gguf.File) *experts.Store {
		expertBytes, _ = experts.SplitBytes(f)
		budget, inFlight = expertBytes/8, experts.InFlightBytes(f)
		cfg := experts.DefaultPagerConfig(budget)
		var err error
		if st, err = experts.NewStore(f, experts.StoreConfig{Threads: 2, Pager: &cfg}); err != nil {
			t.Fatal(err)
		}
		if coldStart, err = st.ResidentBytes(); err != nil {
			t.Fatal(err)
		}
		return st
	}, func(step int) {
		if step == 0 {
			return // the prompt: its batch may use more experts than the budget holds
		}
		s := st.Stats()
		r, err := st.ResidentBytes()
		if err != nil {
			t.Fatal(err)
		}
		maxBooks, maxKernel = max(maxBooks, s.ResidentBytes), max(maxKernel, r)
	})
	if !slices.Equal(toks, wantToks) {
		t.Fatalf("paged tokens %v, unconstrained %v", toks, wantToks)
	}
	for i := range logits {
		if !slices.Equal(logits[i], wantLogits[i]) {
			t.Fatalf("step %d: paged logits differ from the unconstrained run's", i)
		}
	}
	s := st.Stats()
	t.Logf("experts %d B, budget %d B, in flight %d B: decode peak %d B (books), %d B (kernel, cold start %d B); %d evictions, hit rate %.2f, prediction precision %.2f recall %.2f",
		expertBytes, budget, inFlight, maxBooks, maxKernel, coldStart, s.Evictions, s.HitRate(), s.PredictPrecision(), s.PredictRecall())
	if s.Evictions == 0 || s.Misses == 0 {
		t.Errorf("the budget forced no paging: %+v", s)
	}
	if maxBooks > budget+inFlight {
		t.Errorf("the pager held %d B after a decode step, over the budget %d B + %d B in flight", maxBooks, budget, inFlight)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil || fs.Type == unix.TMPFS_MAGIC {
		t.Logf("the model is on tmpfs (or statfs failed: %v): its pages cannot leave memory, kernel residency not checked", err)
		return
	}
	if maxKernel > budget+inFlight+coldStart {
		t.Errorf("the kernel held %d B of expert pages after a decode step, over the budget %d B + %d B in flight + %d B resident at open",
			maxKernel, budget, inFlight, coldStart)
	}
}
