package router_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/router"
)

// nopBackend computes nothing: it isolates the cost of routing and RPCs.
type nopBackend struct{}

func (nopBackend) Forward(_ context.Context, _ int, b *experts.Batch, out []float32) error {
	clear(out[:b.N*b.Embd])
	return nil
}

// Kimi-K2's MoE shape for BenchmarkLayerRPC: width 7168, 384 experts, top 8.
const benchEmbd, benchExperts, benchK = 7168, 384, 8

var benchInfo = router.ModelInfo{Arch: "bench", Fingerprint: "bench", Layers: 2, Embd: benchEmbd, Experts: benchExperts,
	ExpertsUsed: benchK, MoELayers: []int{1}, ActType: []gguf.Type{0, gguf.TypeQ8_K}}

// nodeEnv makes the test binary a benchmark node holding the experts in
// its value (a spec); it prints its address and serves until stdin closes.
const nodeEnv = "IX_ROUTER_BENCH_NODE"

func serveBenchNode(spec string) {
	s, err := router.ParseSet(spec, benchExperts)
	if err != nil {
		panic(err)
	}
	cfg := expertnode.DefaultConfig()
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = spec, benchInfo, nopBackend{}
	cfg.Service.Holdings = router.Uniform(s, benchInfo.MoELayers)
	srv, err := expertnode.New(cfg)
	if err != nil {
		panic(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(lis.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	srv.Serve(ctx, lis)
}

// startNodeProcess runs a benchmark node in a child process.
func startNodeProcess(b *testing.B, spec string) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+spec)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(addr)
}

// BenchmarkLayerRPC measures the per-layer cost of sending one MoE
// layer's expert work to 3 nodes on loopback (Kimi-K2 width 7168, top 8,
// Q8_K rows) with experts that compute nothing: routing, marshalling,
// the RPCs and merging. us/layer is the wall time of one Forward; direct
// is the same work on an in-process backend; 3nodes has the nodes in this
// process, 3procs in child processes, so its allocs/op are the
// coordinator's alone.
func BenchmarkLayerRPC(b *testing.B) {
	var inproc, procs []router.NodeSpec
	for n := range 3 {
		var s router.Set
		s.AddRange(n*benchExperts/3, (n+1)*benchExperts/3-1)
		cfg := expertnode.DefaultConfig()
		cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = fmt.Sprint(n), benchInfo, nopBackend{}
		cfg.Service.Holdings = router.Uniform(s, benchInfo.MoELayers)
		node := experttest.StartNode(b, cfg)
		inproc = append(inproc, router.NodeSpec{Addr: node.Addr})
		procs = append(procs, router.NodeSpec{Addr: startNodeProcess(b, s.String())})
	}
	newRouter := func(specs []router.NodeSpec) *router.Router {
		cfg := router.DefaultConfig()
		cfg.Model = benchInfo
		r, err := router.New(context.Background(), cfg, specs)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		return r
	}
	r, rp := newRouter(inproc), newRouter(procs)
	for _, rows := range []int{1, 16} {
		batch := experttest.Batch(1, rows, benchK, benchEmbd, benchExperts, gguf.TypeQ8_K)
		out := make([]float32, rows*benchEmbd)
		for _, be := range []struct {
			name string
			be   experts.Backend
		}{{"direct", nopBackend{}}, {"3nodes", r}, {"3procs", rp}} {
			b.Run(fmt.Sprintf("rows=%d/%s", rows, be.name), func(b *testing.B) {
				b.ReportAllocs()
				start := time.Now()
				for b.Loop() {
					if err := be.be.Forward(context.Background(), 1, batch, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "us/layer")
			})
		}
	}
}

// BenchmarkGenerate reports decode tokens/s of the reduced kimi-k2-mini
// (Q4_K_M) in single-node mode and with its experts on 3 in-process nodes
// (replication 2, no local experts) on loopback. Nodes and coordinator
// share this machine's cores.
func BenchmarkGenerate(b *testing.B) {
	path := kimiMini(b, "Q4_K_M")
	c := startModelCluster(b, path, 3, 2)
	prompt := testPrompt(c.model.Config.Vocab)
	cfg := router.DefaultConfig()
	cfg.Model = c.info
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const tokens = 16
	for _, be := range []struct {
		name string
		be   experts.Backend
	}{{"local", nil}, {"3nodes", r}} {
		b.Run(be.name, func(b *testing.B) {
			var gen time.Duration
			for b.Loop() {
				gen += decode(b, c.model, be.be, prompt, tokens)
			}
			b.ReportMetric(float64(tokens*b.N)/gen.Seconds(), "tokens/s")
		})
	}
}

// decode evaluates prompt, then times tokens greedy decode steps.
func decode(b *testing.B, m *model.Model, be experts.Backend, prompt []int32, tokens int) time.Duration {
	run := m.NewRunner(model.Options{Threads: 2, MaxBatch: len(prompt), Experts: be})
	defer run.Close()
	seq, err := m.NewSequence(256, model.KVF16)
	if err != nil {
		b.Fatal(err)
	}
	var last []float32
	keep := func(_ int, l []float32) error { last = l; return nil }
	ctx := context.Background()
	if err := run.Eval(ctx, seq, prompt, false, keep); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	one := []int32{0}
	for range tokens {
		one[0] = int32(argmax(last))
		if err := run.Eval(ctx, seq, one, false, keep); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
