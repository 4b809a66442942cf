package router_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/internal/testpki"
	"github.com/inference-x/inference-x/router"
)

const (
	tLayers  = 4
	tExperts = 24
	tEmbd    = 256
	tK       = 8
)

var tMoE = []int{1, 2, 3} // layer 0 is dense

func fakeInfo(act gguf.Type) router.ModelInfo {
	at := make([]gguf.Type, tLayers)
	for _, l := range tMoE {
		at[l] = act
	}
	return router.ModelInfo{Arch: "fake", Fingerprint: "fake-" + act.String(), Layers: tLayers, Embd: tEmbd,
		Experts: tExperts, ExpertsUsed: tK, MoELayers: tMoE, ActType: at}
}

// cluster is n in-process nodes behind fault-injection proxies.
type cluster struct {
	nodes   []*experttest.Node
	proxies []*experttest.Proxy
	fakes   []*experttest.Backend
	specs   []router.NodeSpec
}

// startCluster starts 3 nodes holding thirds of the experts with
// replication 2: node n holds thirds n and n+1 (mod 3).
func startCluster(t *testing.T, info router.ModelInfo) *cluster {
	t.Helper()
	c := &cluster{}
	third := tExperts / 3
	for n := range 3 {
		var s router.Set
		for _, j := range []int{n, (n + 1) % 3} {
			s.AddRange(j*third, (j+1)*third-1)
		}
		fake := experttest.New(tLayers, tExperts, tEmbd)
		cfg := expertnode.DefaultConfig()
		cfg.Service.NodeID = string(rune('a' + n))
		cfg.Service.Model = info
		cfg.Service.Executor = fake
		cfg.Service.Holdings = router.Uniform(s, tMoE)
		cfg.Service.MaxConcurrent = 2
		node := experttest.StartNode(t, cfg)
		p := experttest.StartProxy(t, node.Addr)
		c.nodes, c.proxies, c.fakes = append(c.nodes, node), append(c.proxies, p), append(c.fakes, fake)
		c.specs = append(c.specs, router.NodeSpec{Name: cfg.Service.NodeID, Addr: p.Addr})
	}
	return c
}

func newRouter(t *testing.T, info router.ModelInfo, local experts.Backend, specs []router.NodeSpec, log *slog.Logger) *router.Router {
	t.Helper()
	cfg := router.DefaultConfig()
	cfg.Model, cfg.Local, cfg.Logger = info, local, log
	cfg.CallTimeout, cfg.EjectBase = 2*time.Second, time.Minute
	cfg.EjectMax = time.Minute
	r, err := router.New(context.Background(), cfg, specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// want runs b on one fake backend: the single-node result.
func want(t *testing.T, layer int, b *experts.Batch) []float32 {
	t.Helper()
	out := make([]float32, b.N*b.Embd)
	if err := experttest.New(tLayers, tExperts, tEmbd).Forward(context.Background(), layer, b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %v (%08x), want %v (%08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func TestClusterMatchesLocalBits(t *testing.T) {
	for _, qt := range []gguf.Type{gguf.TypeQ8_0, gguf.TypeQ8_K, gguf.TypeF32} {
		t.Run(qt.String(), func(t *testing.T) {
			info := fakeInfo(qt)
			c := startCluster(t, info)
			r := newRouter(t, info, nil, c.specs, nil)
			for seed, n := range []int{1, 2, 7, 33} {
				for _, layer := range tMoE {
					b := experttest.Batch(seed, n, tK, tEmbd, tExperts, qt)
					out := make([]float32, n*tEmbd)
					if err := r.Forward(context.Background(), layer, b, out); err != nil {
						t.Fatal(err)
					}
					sameBits(t, "cluster", out, want(t, layer, b))
				}
			}
			calls := int64(0)
			for _, f := range c.fakes {
				calls += f.Calls.Load()
			}
			if calls == 0 {
				t.Fatal("no node computed anything")
			}
		})
	}
}

// TestSummationOrderMatters makes sure the test data would catch a router
// that added per-node partial sums instead of terms in order.
func TestSummationOrderMatters(t *testing.T) {
	b := experttest.Batch(3, 4, tK, tEmbd, tExperts, gguf.TypeF32)
	ref := want(t, 1, b)
	// sum odd and even slots separately, then add: a different order
	one := func(par int) []float32 {
		sb := *b
		sb.K = tK / 2
		sb.Experts, sb.Weights = make([]int32, b.N*sb.K), make([]float32, b.N*sb.K)
		for i := range b.N {
			for k := range sb.K {
				sb.Experts[i*sb.K+k] = b.Experts[i*tK+2*k+par]
				sb.Weights[i*sb.K+k] = b.Weights[i*tK+2*k+par]
			}
		}
		return want(t, 1, &sb)
	}
	even, odd := one(0), one(1)
	diff := 0
	for i := range ref {
		if math.Float32bits(even[i]+odd[i]) != math.Float32bits(ref[i]) {
			diff++
		}
	}
	if diff == 0 {
		t.Fatal("reordered sums match bit for bit: the test data cannot tell orders apart")
	}
}

func TestLocalOnlyAndLocalFallback(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	local := experttest.New(tLayers, tExperts, tEmbd)
	r := newRouter(t, info, local, nil, nil)
	b := experttest.Batch(5, 3, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 3*tEmbd)
	if err := r.Forward(context.Background(), 2, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "local only", out, want(t, 2, b))

	// every node gone: the coordinator's own experts take over
	c := startCluster(t, info)
	var logs syncBuffer
	r = newRouter(t, info, local, c.specs, slog.New(slog.NewTextHandler(&logs, nil)))
	for _, p := range c.proxies {
		p.Kill()
	}
	clear(out)
	if err := r.Forward(context.Background(), 2, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "local fallback", out, want(t, 2, b))
	if !strings.Contains(logs.String(), "failing over") {
		t.Errorf("no failover logged:\n%s", logs.String())
	}
}

func TestFailoverToReplica(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	var logs syncBuffer
	r := newRouter(t, info, nil, c.specs, slog.New(slog.NewTextHandler(&logs, nil)))
	b := experttest.Batch(9, 5, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 5*tEmbd)
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	c.proxies[1].Kill()
	for step := range 3 {
		clear(out)
		if err := r.Forward(context.Background(), 3, b, out); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		sameBits(t, "after failover", out, want(t, 3, b))
	}
	if !strings.Contains(logs.String(), "node=b") || !strings.Contains(logs.String(), "failing over") {
		t.Errorf("failover of node b not logged:\n%s", logs.String())
	}
}

func TestDeadlineFailover(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	// node a never answers in time
	c.fakes[0].Hook = func(ctx context.Context, _ int, _ *experts.Batch) error {
		<-ctx.Done()
		return ctx.Err()
	}
	cfg := router.DefaultConfig()
	cfg.Model, cfg.CallTimeout, cfg.EjectBase = info, 100*time.Millisecond, time.Minute
	cfg.EjectMax = time.Minute
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := experttest.Batch(11, 6, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 6*tEmbd)
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "after deadline", out, want(t, 1, b))
}

// callLog is a router.Observer counting calls, errors and failovers by
// node.
type callLog struct {
	mu                     sync.Mutex
	calls, errs, failovers map[string]int
	ejections, readmitted  map[string]int
}

func newCallLog() *callLog {
	return &callLog{calls: map[string]int{}, errs: map[string]int{}, failovers: map[string]int{},
		ejections: map[string]int{}, readmitted: map[string]int{}}
}

func (l *callLog) Ejected(node string, ejected bool, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ejected {
		l.ejections[node]++
	} else {
		l.readmitted[node]++
	}
}

// get returns m[node] under the lock.
func (l *callLog) get(m map[string]int, node string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return m[node]
}

func (l *callLog) ExpertCall(node string, _ int, _ time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[node]++
	if err != nil {
		l.errs[node]++
	}
}

func (l *callLog) Failover(node string, terms int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failovers[node] += terms
}

func TestNoLiveHolder(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	obs := newCallLog()
	cfg := router.DefaultConfig()
	cfg.Model, cfg.Observer, cfg.CallTimeout, cfg.EjectBase = info, obs, 2*time.Second, time.Minute
	cfg.EjectMax = time.Minute
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if cov := r.Coverage(); !cov.Covered() {
		t.Fatalf("coverage with every node up: %+v", cov)
	}
	c.proxies[0].Kill()
	c.proxies[1].Kill() // the second third lives on a and b only
	b := experttest.Batch(1, 1, 1, tEmbd, tExperts, gguf.TypeQ8_0)
	b.Experts[0] = tExperts/3 + 1
	err = r.Forward(context.Background(), 2, b, make([]float32, tEmbd))
	if !errors.Is(err, router.ErrNoHolder) || !errors.Is(err, experts.ErrUnavailable) || !strings.Contains(err.Error(), "layer 2 expert 9") {
		t.Fatalf("err = %v, want ErrNoHolder (experts.ErrUnavailable) naming layer 2 expert 9", err)
	}
	// a and b failed and are skipped: the second third of every MoE layer
	// is uncovered.
	if cov := r.Coverage(); cov.Uncovered != len(tMoE)*tExperts/3 || cov.Layer != tMoE[0] || cov.Expert != tExperts/3 {
		t.Errorf("coverage %+v, want %d uncovered from layer %d expert %d", cov, len(tMoE)*tExperts/3, tMoE[0], tExperts/3)
	}
	obs.mu.Lock()
	if obs.calls["a"]+obs.calls["b"] != 2 || obs.errs["a"]+obs.errs["b"] != 2 || obs.failovers["a"]+obs.failovers["b"] != 2 {
		t.Errorf("observed calls %v, errors %v, failovers %v", obs.calls, obs.errs, obs.failovers)
	}
	obs.mu.Unlock()
	// experts c still holds keep working
	b.Experts[0] = 2*tExperts/3 + 1
	if err := r.Forward(context.Background(), 2, b, make([]float32, tEmbd)); err != nil {
		t.Fatal(err)
	}
}

func TestBadBatch(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	r := newRouter(t, info, experttest.New(tLayers, tExperts, tEmbd), nil, nil)
	b := experttest.Batch(1, 2, 2, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 2*tEmbd)
	if err := r.Forward(context.Background(), 0, b, out); !errors.Is(err, experts.ErrUnknownExpert) {
		t.Errorf("dense layer: err = %v", err)
	}
	b.Experts[1] = tExperts
	if err := r.Forward(context.Background(), 1, b, out); !errors.Is(err, experts.ErrUnknownExpert) {
		t.Errorf("expert out of range: err = %v", err)
	}
}

func TestConcurrentCallers(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	r := newRouter(t, info, nil, c.specs, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := experttest.Batch(g, 3, tK, tEmbd, tExperts, gguf.TypeQ8_0)
			ref := want(t, 1+g%3, b)
			out := make([]float32, 3*tEmbd)
			for range 20 {
				if err := r.Forward(context.Background(), 1+g%3, b, out); err != nil {
					errs <- err
					return
				}
				for i := range ref {
					if math.Float32bits(out[i]) != math.Float32bits(ref[i]) {
						errs <- errors.New("concurrent result differs")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSplitsLargeCalls(t *testing.T) {
	info := fakeInfo(gguf.TypeF32)
	c := startCluster(t, info)
	cfg := router.DefaultConfig()
	cfg.Model, cfg.MaxMessageBytes = info, 8<<10 // a few rows per call
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := experttest.Batch(2, 40, tK, tEmbd, tExperts, gguf.TypeF32)
	out := make([]float32, 40*tEmbd)
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "split", out, want(t, 1, b))
}

// callSizes is an Observer that records the largest call and counts the
// failed ones.
type callSizes struct {
	mu           sync.Mutex
	most, failed int
}

func (o *callSizes) ExpertCall(_ string, rows int, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.most = max(o.most, rows)
	if err != nil {
		o.failed++
	}
}

func (o *callSizes) Failover(string, int)                {}
func (o *callSizes) Ejected(string, bool, time.Duration) {}

// TestSplitsByRows: a batch of more rows than a node takes in one call
// (router.MaxCallRows, the nodes' default bound) is split into calls the
// node accepts, none refused.
func TestSplitsByRows(t *testing.T) {
	if testing.Short() {
		t.Skip("a 4100-row batch")
	}
	info := fakeInfo(gguf.TypeF32)
	ncfg := expertnode.DefaultConfig()
	var all router.Set
	all.AddRange(0, tExperts-1)
	ncfg.Service.NodeID, ncfg.Service.Model, ncfg.Service.Executor = "all", info, experttest.New(tLayers, tExperts, tEmbd)
	ncfg.Service.Holdings = router.Uniform(all, tMoE)
	node := experttest.StartNode(t, ncfg)
	obs := &callSizes{}
	cfg := router.DefaultConfig()
	cfg.Model, cfg.Observer = info, obs
	r, err := router.New(context.Background(), cfg, []router.NodeSpec{{Name: "all", Addr: node.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := router.MaxCallRows + 4
	b := experttest.Batch(3, n, tK, tEmbd, tExperts, gguf.TypeF32)
	out := make([]float32, n*tEmbd)
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "split by rows", out, want(t, 1, b))
	if obs.most > router.MaxCallRows || obs.failed > 0 {
		t.Errorf("largest call %d rows (limit %d), %d calls failed", obs.most, router.MaxCallRows, obs.failed)
	}
}

func TestAllocsPerForward(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	r := newRouter(t, info, nil, c.specs, nil)
	b := experttest.Batch(4, 1, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, tEmbd)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if err := r.Forward(ctx, 1, b, out); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations per decode Forward (1 row, %d experts over 3 nodes, counting the in-process nodes): %.0f", tK, allocs)

	// The router's own planning, local compute and merging allocate nothing.
	r = newRouter(t, info, nopBackend{}, nil, nil)
	if allocs := testing.AllocsPerRun(200, func() {
		if err := r.Forward(ctx, 1, b, out); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("local-only Forward: %.0f allocations, want 0", allocs)
	}
}

// syncBuffer is a bytes.Buffer safe for the router's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOtherModelRefused(t *testing.T) {
	c := startCluster(t, fakeInfo(gguf.TypeQ8_0))
	cfg := router.DefaultConfig()
	cfg.Model = fakeInfo(gguf.TypeQ8_K) // another fingerprint
	if _, err := router.New(context.Background(), cfg, c.specs); err == nil || !strings.Contains(err.Error(), "serves a different model") {
		t.Fatalf("err = %v, want a model mismatch", err)
	}
}

// TestMutualTLSAndToken runs the cluster with mutual TLS and a token, and
// checks a coordinator without the token is refused.
func TestMutualTLSAndToken(t *testing.T) {
	ca, certs := testpki.Write(t, t.TempDir(), "node", "coordinator")
	info := fakeInfo(gguf.TypeQ8_0)
	var all router.Set
	all.AddRange(0, tExperts-1)
	cfg := expertnode.DefaultConfig()
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = "tls", info, experttest.New(tLayers, tExperts, tEmbd)
	cfg.Service.Holdings = router.Uniform(all, tMoE)
	cfg.RPC.Security = rpc.Security{CertFile: certs["node"][0], KeyFile: certs["node"][1], CAFile: ca, Token: "t0k"}
	node := experttest.StartNode(t, cfg)

	rc := router.DefaultConfig()
	rc.Model, rc.StatusTimeout = info, 2*time.Second
	rc.Client.Security = rpc.Security{CertFile: certs["coordinator"][0], KeyFile: certs["coordinator"][1], CAFile: ca, Token: "t0k"}
	r, err := router.New(context.Background(), rc, []router.NodeSpec{{Addr: node.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := experttest.Batch(2, 2, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 2*tEmbd)
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "mTLS", out, want(t, 1, b))

	rc.Client.Security.Token = "wrong"
	if _, err := router.New(context.Background(), rc, []router.NodeSpec{{Addr: node.Addr}}); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Fatalf("wrong token: %v", err)
	}
}
