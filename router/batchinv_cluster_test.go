package router_test

import (
	"context"
	"math"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/server/scheduler"
)

// evalTogether evaluates prompts as one batch stream of at most maxBatch
// tokens per Forward (the prompts chunked in order), then n greedy decode
// steps of all sequences in one Forward each, over backend be. It returns
// every position's logits of sequence 0 and its generated tokens.
func evalTogether(t *testing.T, m *model.Model, be experts.Backend, prompts [][]int32, n, maxBatch int) ([][]float32, []int32) {
	t.Helper()
	r := m.NewRunner(model.Options{Threads: 2, MaxBatch: maxBatch, Experts: be})
	defer r.Close()
	seqs := make([]*model.Sequence, len(prompts))
	for i := range seqs {
		s, err := m.NewSequence(256, model.KVF16)
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = s
	}
	type row struct{ seq, pos int }
	var pending []row
	for i, p := range prompts {
		for k := range p {
			pending = append(pending, row{i, k})
		}
	}
	var rows [][]float32
	next := make([]int32, len(prompts))
	var b model.Batch
	forward := func(rs []row, tok func(row) int32) {
		b.Reset()
		for _, x := range rs {
			b.Add(seqs[x.seq], tok(x), x.pos, true)
		}
		logits, err := r.Forward(context.Background(), &b)
		if err != nil {
			t.Fatal(err)
		}
		v := m.Config.Vocab
		for j, x := range rs {
			l := logits[j*v : (j+1)*v]
			if x.seq == 0 {
				rows = append(rows, append([]float32(nil), l...))
			}
			next[x.seq] = int32(argmax(l))
		}
	}
	for len(pending) > 0 {
		k := min(maxBatch, len(pending))
		forward(pending[:k], func(x row) int32 { return prompts[x.seq][x.pos] })
		pending = pending[k:]
	}
	var toks []int32
	for step := 0; step < n; step++ {
		toks = append(toks, next[0])
		var rs []row
		for i, p := range prompts {
			rs = append(rs, row{i, len(p) + step})
		}
		forward(rs, func(x row) int32 { return next[x.seq] })
	}
	return rows, toks
}

// TestClusterBatchInvariance: a sequence's logits (float32 bits, every
// position) and greedy tokens in a cluster of three nodes, batched with
// 1 to 7 other sequences of different lengths and chunked by 7 or 64
// tokens, equal those of the same sequence alone in single-node mode; and
// through the scheduler over the cluster, its tokens with others equal
// its tokens alone. The Q4_K_M model's experts take the tile path in
// llama.cpp's mode where the CPU has AMX (256-wide rows, segments of 8+).
func TestClusterBatchInvariance(t *testing.T) {
	kernels.SetBatchInvariant(true)
	t.Run("kimi-k2-mini reduced Q4_K_M", func(t *testing.T) { clusterBatchInvariance(t, kimiMini(t, "Q4_K_M")) })
	t.Run("qwen3moe-small.F32", func(t *testing.T) {
		clusterBatchInvariance(t, testenv.Shared(t, "testdata/models/qwen3moe-small.F32.gguf"))
	})
}

func clusterBatchInvariance(t *testing.T, path string) {
	c := startModelCluster(t, path, 3, 2)
	m := c.model
	be := c.router(t)
	vocab := m.Config.Vocab
	prompt := func(n, salt int) []int32 {
		p := make([]int32, n)
		for i := range p {
			p[i] = int32((i*37 + 5 + salt*101) % vocab)
		}
		return p
	}
	target := prompt(20, 0)
	const n = 6
	want, wantToks := evalTogether(t, m, nil, [][]int32{target}, n, 512)
	for others := 1; others <= 7; others += 2 {
		prompts := [][]int32{target}
		for k := 0; k < others; k++ {
			prompts = append(prompts, prompt(3+(k*9)%30, k+1))
		}
		mb := []int{7, 64}[others%2]
		got, gotToks := evalTogether(t, m, be, prompts, n, max(mb, len(prompts)))
		for i := range want {
			for v := range want[i] {
				if math.Float32bits(got[i][v]) != math.Float32bits(want[i][v]) {
					t.Fatalf("with %d others, batch %d: position %d logit %d: cluster %v, alone on one node %v", others, mb, i, v, got[i][v], want[i][v])
				}
			}
		}
		for i := range wantToks {
			if gotToks[i] != wantToks[i] {
				t.Fatalf("with %d others: tokens %v, alone %v", others, gotToks, wantToks)
			}
		}
	}

	// Through the scheduler: alone on one node, then with others over the
	// cluster.
	sched := func(be experts.Backend, prompts [][]int32, maxBatch int) []int32 {
		cfg := scheduler.Config{Slots: len(prompts), Ctx: 128, KV: model.KVF16, MaxBatch: maxBatch, Queue: len(prompts), Threads: 2}
		var opts []scheduler.Option
		if be != nil {
			opts = append(opts, scheduler.WithExperts(be))
		}
		s, err := scheduler.New(m, cfg, opts...)
		if err != nil {
			t.Fatal(err)
		}
		var streams []*scheduler.Stream
		for _, p := range prompts {
			st, err := s.Submit(context.Background(), &scheduler.Request{Prompt: p, MaxTokens: 16})
			if err != nil {
				t.Fatal(err)
			}
			streams = append(streams, st)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		var first []int32
		for i, st := range streams {
			for ev := range st.Events {
				if ev.Err != nil {
					t.Fatalf("stream %d: %v", i, ev.Err)
				}
				if i == 0 && !ev.Done {
					first = append(first, ev.Token)
				}
			}
		}
		return first
	}
	alone := sched(nil, [][]int32{target}, 512)
	for _, mb := range []int{7, 64} {
		got := sched(be, [][]int32{target, target, prompt(5, 3), prompt(31, 4)}, mb)
		for i := range alone {
			if i >= len(got) || got[i] != alone[i] {
				t.Fatalf("scheduler over the cluster, batch %d: tokens %v, alone on one node %v", mb, got, alone)
			}
		}
	}
}
