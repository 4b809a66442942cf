package router_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/synth"
	"github.com/inference-x/inference-x/tokenizer"
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
	m := experttest.OpenModel(t, path)
	f := m.File
	info, err := router.InfoFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	c := &modelCluster{file: f, model: m, info: info}
	for _, n := range experttest.StartModelNodes(t, f, info, nodes, replication) {
		c.proxies, c.nodes = append(c.proxies, n.Proxy), append(c.nodes, n.Node)
		c.specs = append(c.specs, router.NodeSpec{Name: n.Name, Addr: n.Proxy.Addr})
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
	models := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"kimi-k2-mini reduced Q4_K_M", func(t *testing.T) string { return kimiMini(t, "Q4_K_M") }},
		{"kimi-k2-mini reduced Q8_0", func(t *testing.T) string { return kimiMini(t, "Q8_0") }},
		{"deepseek2-384.F32", func(t *testing.T) string { return testenv.Shared(t, "testdata/models/deepseek2-384.F32.gguf") }},
		{"qwen3moe-small.F32", func(t *testing.T) string { return testenv.Shared(t, "testdata/models/qwen3moe-small.F32.gguf") }},
	}
	for _, tm := range models {
		t.Run(tm.name, func(t *testing.T) {
			c := startModelCluster(t, tm.path(t), 3, 2)
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
			t.Logf("%d logits rows equal; activations on the wire %v; Forward calls per node %v", len(want), c.info.ActType[c.info.MoELayers[0]], c.calls())
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

// kimiMini writes the kimi-k2-mini preset (Kimi-K2's structure: MLA, 384
// experts top 8, a shared expert, sigmoid routing with bias, a leading
// dense layer) reduced to 3 layers of width 256, expert width 64 and a
// 1024-token vocabulary, once per test binary and type.
func kimiMini(t testing.TB, typ string) string {
	t.Helper()
	kimiOnce.Lock()
	defer kimiOnce.Unlock()
	if p, ok := kimiFiles[typ]; ok {
		return p
	}
	c, err := synth.Preset("kimi-k2-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.ExpertFF, c.Vocab = 3, 256, 512, 4, 64, 1024
	c.QLoraRank, c.KVLoraRank, c.RopeDim, c.NopeDim, c.VHeadDim = 128, 128, 32, 32, 32
	p := filepath.Join(kimiDir, "kimi-k2-mini-"+typ+".gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: typ, Seed: 7}, p); err != nil {
		t.Fatal(err)
	}
	kimiFiles[typ] = p
	return p
}

var (
	kimiOnce  sync.Mutex
	kimiFiles = map[string]string{}
	kimiDir   string
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		serveBenchNode(spec) // this process is a node of BenchmarkLayerRPC
		return
	}
	var code int
	func() {
		dir, err := os.MkdirTemp("", "ix-router-test-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		kimiDir = dir
		code = m.Run()
	}()
	os.Exit(code)
}

// TestUpcycledStoriesCluster: stories260K (a real trained llama) upcycled to
// a mixture of 8 experts, top 2, served by 3 nodes with replication 2; the
// greedy text equals single-node mode's.
func TestUpcycledStoriesCluster(t *testing.T) {
	src := testenv.Shared(t, "models/stories260K/stories260K.gguf")
	path := filepath.Join(t.TempDir(), "stories260K-moe.gguf")
	upcycle(t, src, path, 8, 2)
	c := startModelCluster(t, path, 3, 2)
	tok, err := tokenizer.New(c.file)
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode("Once upon a time, there was a little", true, false)
	text := func(be experts.Backend) string {
		_, toks := generate(t, c.model, be, prompt, 48, nil)
		d := tok.NewDecoder(false)
		var b strings.Builder
		for _, id := range toks {
			b.WriteString(d.Add(id))
		}
		return b.String()
	}
	want := text(nil)
	got := text(c.router(t))
	if got != want {
		t.Fatalf("cluster text %q, single node %q", got, want)
	}
	t.Logf("greedy text of upcycled stories260K on 3 nodes: %q; calls per node %v", got, c.calls())
}

// upcycle writes src (a dense llama) as a Mixtral-style MoE: every FFN
// becomes experts copies of itself, expert e's down projection scaled by
// 1+0.02*(e-experts/2) so experts differ, under a random router.
func upcycle(t *testing.T, src, dst string, nExp, used int) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arch, _ := f.Architecture()
	var kvs []gguf.KV
	for _, kv := range f.KV {
		kvs = append(kvs, kv)
	}
	kvs = append(kvs, gguf.KV{Key: arch + ".expert_count", Value: gguf.MustValue(uint32(nExp))},
		gguf.KV{Key: arch + ".expert_used_count", Value: gguf.MustValue(uint32(used))})
	var specs []gguf.TensorSpec
	var data [][]byte
	put := func(name string, typ gguf.Type, b []byte, dims ...int64) {
		specs = append(specs, gguf.TensorSpec{Name: name, Type: typ, Dims: dims})
		data = append(data, b)
	}
	seed := uint32(1)
	for i := range f.Tensors {
		tn := &f.Tensors[i]
		var layer int
		var kind string
		if n, _ := fmt.Sscanf(tn.Name, "blk.%d.ffn_%s", &layer, &kind); n != 2 || tn.Type != gguf.TypeF32 ||
			(kind != "gate.weight" && kind != "up.weight" && kind != "down.weight") {
			put(tn.Name, tn.Type, tn.Data, tn.Dims...)
			continue
		}
		x := floats(tn.Data)
		var all []float32
		for e := range nExp {
			scale := float32(1)
			if kind == "down.weight" {
				scale = 1 + 0.02*float32(e-nExp/2)
			}
			for _, v := range x {
				all = append(all, v*scale)
			}
		}
		base := strings.TrimSuffix(kind, ".weight")
		put(fmt.Sprintf("blk.%d.ffn_%s_exps.weight", layer, base), gguf.TypeF32, bytesOf(all), tn.Dims[0], tn.Dims[1], int64(nExp))
		if kind == "gate.weight" {
			router := make([]float32, tn.Dims[0]*int64(nExp))
			for j := range router {
				seed = seed*1664525 + 1013904223
				router[j] = (float32(seed>>8)/float32(1<<24) - 0.5) * 0.5
			}
			put(fmt.Sprintf("blk.%d.ffn_gate_inp.weight", layer), gguf.TypeF32, bytesOf(router), tn.Dims[0], int64(nExp))
		}
	}
	if err := gguf.WriteFile(dst, kvs, specs, data); err != nil {
		t.Fatal(err)
	}
}

func floats(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

func bytesOf(x []float32) []byte {
	b := make([]byte, 0, 4*len(x))
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}
