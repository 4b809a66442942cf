package router_test

import (
	"context"
	"math"
	"testing"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/router"
)

// modelCluster is a model file served by in-process expert nodes.
type modelCluster struct {
	file    *gguf.File
	model   *model.Model
	info    router.ModelInfo
	specs   []router.NodeSpec
	proxies []*experttest.Proxy
	nodes   []*experttest.Node
}

// calls returns the Forward calls each node served.
func (c *modelCluster) calls() []uint64 {
	var out []uint64
	for _, n := range c.nodes {
		st, _ := n.Server.Service().Status(context.Background(), nil)
		out = append(out, st.GetForwardCalls())
	}
	return out
}

// startModelCluster serves the routed experts of path on nodes in-process
// nodes, each expert on replication of them: the experts are cut into
// nodes parts and node n holds parts n .. n+replication-1 (mod nodes).
func startModelCluster(t testing.TB, path string, nodes, replication int) *modelCluster {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := model.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	info, err := router.InfoFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	c := &modelCluster{file: f, model: m, info: info}
	for n := range nodes {
		var s router.Set
		for j := range replication {
			part := (n + j) % nodes
			s.AddRange(part*info.Experts/nodes, (part+1)*info.Experts/nodes-1)
		}
		local, err := experts.NewLocal(f, experts.LocalConfig{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(local.Close)
		cfg := expertnode.DefaultConfig()
		cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = string(rune('a'+n)), info, local
		cfg.Service.Holdings = router.Uniform(s, info.MoELayers)
		node := experttest.StartNode(t, cfg)
		p := experttest.StartProxy(t, node.Addr)
		c.proxies, c.nodes = append(c.proxies, p), append(c.nodes, node)
		c.specs = append(c.specs, router.NodeSpec{Name: cfg.Service.NodeID, Addr: p.Addr})
	}
	return c
}

// router makes a router over the cluster with no local experts.
func (c *modelCluster) router(t testing.TB) *router.Router {
	t.Helper()
	cfg := router.DefaultConfig()
	cfg.Model = c.info
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// generate evaluates prompt as one batch (logits of every position), then
// n greedy tokens one at a time, calling step before each; it returns the
// logits rows and the generated tokens.
func generate(t testing.TB, m *model.Model, be experts.Backend, prompt []int32, n int, step func(int)) ([][]float32, []int32) {
	t.Helper()
	r := m.NewRunner(model.Options{Threads: 2, MaxBatch: len(prompt), Experts: be})
	defer r.Close()
	seq, err := m.NewSequence(256, model.KVF32)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]float32
	keep := func(_ int, l []float32) error {
		rows = append(rows, append([]float32(nil), l...))
		return nil
	}
	ctx := context.Background()
	if err := r.Eval(ctx, seq, prompt, true, keep); err != nil {
		t.Fatal(err)
	}
	var toks []int32
	for i := range n {
		if step != nil {
			step(i)
		}
		tok := int32(argmax(rows[len(rows)-1]))
		toks = append(toks, tok)
		if err := r.Eval(ctx, seq, []int32{tok}, false, keep); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	return rows, toks
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func testPrompt(vocab int) []int32 {
	p := make([]int32, 12)
	for i := range p {
		p[i] = int32((i*37 + 5) % vocab)
	}
	return p
}

// TestModelClusterBitIdentical: three nodes with replication 2 hold the
// routed experts of a Kimi-K2-routed model (384 experts, top 8); the
// coordinator has no local experts. Its logits, prompt and decode, equal
// single-node mode's bit for bit.
func TestModelClusterBitIdentical(t *testing.T) {
	for _, name := range []string{"deepseek2-384.F32.gguf", "deepseek2-384.Q8_0.gguf", "qwen3moe-small.F32.gguf"} {
		t.Run(name, func(t *testing.T) {
			c := startModelCluster(t, testenv.Shared(t, "testdata/models/"+name), 3, 2)
			prompt := testPrompt(c.model.Config.Vocab)
			want, wantToks := generate(t, c.model, nil, prompt, 8, nil)
			got, gotToks := generate(t, c.model, c.router(t), prompt, 8, nil)
			for i := range want {
				for v := range want[i] {
					if math.Float32bits(got[i][v]) != math.Float32bits(want[i][v]) {
						t.Fatalf("row %d logit %d: cluster %v, single node %v", i, v, got[i][v], want[i][v])
					}
				}
			}
			if len(gotToks) != len(wantToks) {
				t.Fatalf("tokens %v, want %v", gotToks, wantToks)
			}
			for n, calls := range c.calls() {
				if calls == 0 {
					t.Errorf("node %d served no call", n)
				}
			}
			t.Logf("%d logits rows equal; Forward calls per node %v", len(want), c.calls())
		})
	}
}

// TestModelClusterNodeDies cuts a node off in the middle of generation;
// its replicas take over and the tokens stay the same.
func TestModelClusterNodeDies(t *testing.T) {
	c := startModelCluster(t, testenv.Shared(t, "testdata/models/deepseek2-384.Q8_0.gguf"), 3, 2)
	prompt := testPrompt(c.model.Config.Vocab)
	_, want := generate(t, c.model, nil, prompt, 12, nil)
	_, got := generate(t, c.model, c.router(t), prompt, 12, func(i int) {
		if i == 5 {
			c.proxies[1].Kill()
		}
	})
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("tokens %v, want %v", got, want)
		}
	}
	t.Logf("tokens %v; Forward calls per node %v (b was cut off after token 5)", got, c.calls())
}
