package expertnode_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/buildinfo"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/internal/testpki"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

// gatedBackend is the fake with a Load that waits for its gate, as a
// pager mapping experts from a slow disk does.
type gatedBackend struct {
	*experttest.Backend
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedBackend) Load(ctx context.Context, _ int, _ []int) error {
	g.entered <- struct{}{}
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedBackend) Release(context.Context, int, []int) error { return nil }

// probed is a node on a loopback port with its probes on another.
type probed struct {
	node   *experttest.Node
	probes *expertnode.Probes
	addr   string // the probes' address
	reg    *prometheus.Registry
}

// startProbed serves a node (configured by edit) and its probes, with
// /metrics on the probe port.
func startProbed(t *testing.T, edit func(*expertnode.Config)) *probed {
	t.Helper()
	cfg := expertnode.DefaultConfig()
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = "n1", info(), experttest.New(layers, nExp, embd)
	var s router.Set
	s.AddRange(0, 7)
	cfg.Service.Holdings = router.Uniform(s, []int{1, 2})
	cfg.Service.ExpertBytes = []int64{0, 1000, 1000}
	cfg.ShutdownTimeout = 5 * time.Second
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildinfo.Collector())
	cfg.Metrics = reg
	if edit != nil {
		edit(&cfg)
	}
	p := &probed{probes: expertnode.NewProbes(nil), reg: reg}
	p.probes.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = lis.Addr().String()
	done := make(chan error, 1)
	go func() { done <- p.probes.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.probes.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	p.node = experttest.StartNode(t, cfg)
	p.probes.Attach(p.node.Server)
	return p
}

// healthClient dials addr as the kubelet's gRPC prober does: plaintext,
// HTTP/2 with prior knowledge.
func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func check(t *testing.T, hc healthpb.HealthClient, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return r.GetStatus(), err
}

// get does a plain HTTP/1.1 GET and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Fatalf("GET %s answered over %s, want HTTP/1.1", url, resp.Proto)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// readyz returns /readyz's status code and reason.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	code, body := get(t, "http://"+addr+"/readyz")
	var b struct{ Status, Reason string }
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if (code == http.StatusOK) != (b.Status == "ready") {
		t.Fatalf("/readyz: %d with body %q", code, body)
	}
	return code, b.Reason
}

// watch opens a Watch stream of service "" and returns a function giving
// each next status.
func watch(t *testing.T, hc healthpb.HealthClient) func() healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	// The deadline only turns a missing change into a failure, not a hang.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		return r.GetStatus()
	}
}

func TestProbesPlaintextBesideTLS(t *testing.T) {
	ca, certs := testpki.Write(t, t.TempDir(), "server", "client")
	p := startProbed(t, func(c *expertnode.Config) {
		c.RPC.Security = rpc.Security{CertFile: certs["server"][0], KeyFile: certs["server"][1], CAFile: ca, Token: "tok"}
	})
	hc := healthClient(t, p.addr)
	for _, svc := range []string{"", ixv1.ExpertService_ServiceDesc.ServiceName, expertnode.LivenessService} {
		if st, err := check(t, hc, svc); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health port, service %q: %v %v, want SERVING", svc, st, err)
		}
	}
	if _, err := check(t, hc, "no.such.Service"); err == nil {
		t.Error("an unknown service answered")
	}
	if code, why := readyz(t, p.addr); code != http.StatusOK {
		t.Errorf("/readyz: %d %q, want 200", code, why)
	}
	if code, body := get(t, "http://"+p.addr+"/livez"); code != http.StatusOK {
		t.Errorf("/livez: %d %q, want 200", code, body)
	}
	// The mutual-TLS port still refuses a plaintext prober.
	if _, err := check(t, healthClient(t, p.node.Addr), ""); err == nil {
		t.Fatal("the TLS port answered a plaintext health check")
	}
}

func TestProbesNotReadyBeforeAttach(t *testing.T) {
	pr := expertnode.NewProbes(nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go pr.Serve(lis)
	defer pr.Shutdown(context.Background())
	addr := lis.Addr().String()
	if code, why := readyz(t, addr); code != http.StatusServiceUnavailable || !strings.Contains(why, "opening the model") {
		t.Errorf("/readyz before the model opened: %d %q, want 503 saying so", code, why)
	}
	if code, _ := get(t, "http://"+addr+"/livez"); code != http.StatusOK {
		t.Errorf("/livez while starting: %d, want 200", code)
	}
	hc := healthClient(t, addr)
	if st, err := check(t, hc, ""); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health before the model opened: %v %v, want NOT_SERVING", st, err)
	}
}

func TestProbesNotReadyDuringLoad(t *testing.T) {
	g := &gatedBackend{Backend: experttest.New(layers, nExp, embd), entered: make(chan struct{}), gate: make(chan struct{})}
	p := startProbed(t, func(c *expertnode.Config) { c.Service.Executor = g })
	next := watch(t, healthClient(t, p.addr))
	if st := next(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, want SERVING", st)
	}
	c := ixv1.NewExpertServiceClient(dial(t, p.node.Addr, ""))
	var more router.Set
	more.AddRange(8, 11)
	loaded := make(chan error, 1)
	go func() {
		_, err := c.Load(context.Background(), &ixv1.LoadRequest{Experts: router.Uniform(more, []int{1}).ToProto()})
		loaded <- err
	}()
	<-g.entered // the executor is mapping the experts
	if st := next(); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch during a Load: %v, want NOT_SERVING", st)
	}
	if code, why := readyz(t, p.addr); code != http.StatusServiceUnavailable || !strings.Contains(why, "loading") {
		t.Errorf("/readyz during a Load: %d %q, want 503 saying it is loading", code, why)
	}
	if st, _ := check(t, healthClient(t, p.addr), ""); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Check during a Load: %v, want NOT_SERVING as /readyz", st)
	}
	if code, _ := get(t, "http://"+p.addr+"/livez"); code != http.StatusOK {
		t.Errorf("/livez during a Load: %d, want 200", code)
	}
	close(g.gate)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	if st := next(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch after the Load: %v, want SERVING", st)
	}
	if code, why := readyz(t, p.addr); code != http.StatusOK {
		t.Errorf("/readyz after the Load: %d %q", code, why)
	}
	if !p.node.Server.Service().Holdings().Has(1, 10) {
		t.Error("the Load did not add its experts")
	}
}

func TestProbesNotReadyWhileDraining(t *testing.T) {
	release := make(chan struct{})
	running := make(chan struct{}, 1)
	fake := experttest.New(layers, nExp, embd)
	fake.Hook = func(ctx context.Context, _ int, _ *experts.Batch) error {
		running <- struct{}{}
		<-release
		return nil
	}
	p := startProbed(t, func(c *expertnode.Config) { c.Service.Executor = fake })
	next := watch(t, healthClient(t, p.addr))
	if st := next(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, want SERVING", st)
	}
	c := ixv1.NewExpertServiceClient(dial(t, p.node.Addr, ""))
	fwd := make(chan error, 1)
	go func() {
		_, err := c.Forward(context.Background(), request())
		fwd <- err
	}()
	<-running // a call is in flight: the drain waits for it
	stopped := make(chan error, 1)
	go func() { stopped <- p.node.Stop() }() // what SIGTERM does
	if st := next(); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch after shutdown began: %v, want NOT_SERVING", st)
	}
	if code, why := readyz(t, p.addr); code != http.StatusServiceUnavailable || !strings.Contains(why, "draining") {
		t.Errorf("/readyz while draining: %d %q, want 503 saying it drains", code, why)
	}
	if code, _ := get(t, "http://"+p.addr+"/livez"); code != http.StatusOK {
		t.Errorf("/livez while draining: %d, want 200 (the drain must not be killed)", code)
	}
	close(release)
	if err := <-fwd; err != nil {
		t.Errorf("the in-flight call failed in the drain: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, "http://"+p.addr+"/livez"); code != http.StatusServiceUnavailable {
		t.Errorf("/livez after the serve loop ended: %d, want 503", code)
	}
}

// scrape GETs /metrics and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include labels (counter, gauge, or a histogram's count); -1 if none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsFollowForwardCalls(t *testing.T) {
	p := startProbed(t, func(c *expertnode.Config) { c.RPC.Security.Token = "tok" })
	fwd := []string{"service", "ix.v1.ExpertService", "method", "Forward"}
	before := scrape(t, p.addr)
	if value(before, "ix_build_info") != 1 {
		t.Error("no ix_build_info")
	}
	if v := value(before, "ix_node_held_experts"); v != 16 {
		t.Errorf("ix_node_held_experts = %v, want 16", v)
	}
	if v := value(before, "ix_node_held_bytes"); v != 16000 {
		t.Errorf("ix_node_held_bytes = %v, want 16000", v)
	}
	if v := value(before, "ix_node_ready"); v != 1 {
		t.Errorf("ix_node_ready = %v, want 1", v)
	}
	if v := value(before, "ix_node_rpc_requests_total", append(fwd, "code", "OK")...); v != 0 {
		t.Fatalf("Forward calls before any call: %v, want 0", v)
	}
	if v := value(before, "ix_node_rpc_in_flight", fwd...); v != 0 {
		t.Fatalf("Forward in flight before any call: %v, want 0", v)
	}

	c := ixv1.NewExpertServiceClient(dial(t, p.node.Addr, "tok"))
	req := request()
	const calls = 3
	var sums int
	for range calls {
		resp, err := c.Forward(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		sums += len(resp.GetSums())
	}
	if _, err := ixv1.NewExpertServiceClient(dial(t, p.node.Addr, "wrong")).Forward(context.Background(), req); err == nil {
		t.Fatal("a wrong token was accepted")
	}
	bad := request()
	bad.Rows[0].Experts[0] = 12 // not held
	if _, err := c.Forward(context.Background(), bad); err == nil {
		t.Fatal("a call for an expert not held succeeded")
	}

	after := scrape(t, p.addr)
	want := map[string]float64{
		"ix_node_rpc_requests_total OK":                 calls,
		"ix_node_rpc_requests_total FailedPrecondition": 1,
	}
	for k, w := range want {
		name, code, _ := strings.Cut(k, " ")
		if v := value(after, name, append(fwd, "code", code)...); v != w {
			t.Errorf("%s{code=%q} = %v, want %v", name, code, v, w)
		}
	}
	// The wrong token was refused before its message was read: it
	// reached no interceptor.
	if v := value(after, "ix_node_rpc_requests_total", append(fwd, "code", "Unauthenticated")...); v > 0 {
		t.Errorf("the refused call counted as handled: %v", v)
	}
	if v := value(after, "ix_node_rpc_refused_total", "code", "Unauthenticated"); v != 1 {
		t.Errorf("ix_node_rpc_refused_total{code=Unauthenticated} = %v, want 1", v)
	}
	// The calls read: the good ones and the one for an expert not held.
	if v := value(after, "ix_node_rpc_duration_seconds", fwd...); v != calls+1 {
		t.Errorf("latency histogram count %v, want %d", v, calls+1)
	}
	if v := value(after, "ix_node_forward_rows"); v != calls+1 {
		t.Errorf("rows histogram count %v, want %d", v, calls+1)
	}
	rows := after["ix_node_forward_rows"].GetMetric()[0].GetHistogram().GetSampleSum()
	exps := after["ix_node_forward_experts"].GetMetric()[0].GetHistogram().GetSampleSum()
	if rows != 2*(calls+1) || exps != 4*(calls+1) {
		t.Errorf("rows sum %v, experts sum %v, want %d and %d", rows, exps, 2*(calls+1), 4*(calls+1))
	}
	var in int
	for _, r := range req.GetRows() {
		in += len(r.GetActivation())
	}
	if v := value(after, "ix_node_forward_received_bytes_total"); v != float64(in*(calls+1)) {
		t.Errorf("received bytes %v, want %d", v, in*(calls+1))
	}
	if v := value(after, "ix_node_forward_sent_bytes_total"); v != float64(sums) {
		t.Errorf("sent bytes %v, want %d", v, sums)
	}
	if v := value(after, "ix_node_rpc_in_flight", fwd...); v != 0 {
		t.Errorf("ix_node_rpc_in_flight = %v after the calls ended, want 0", v)
	}
}

func TestMetricsInFlight(t *testing.T) {
	release := make(chan struct{})
	running := make(chan struct{}, 1)
	fake := experttest.New(layers, nExp, embd)
	fake.Hook = func(context.Context, int, *experts.Batch) error {
		running <- struct{}{}
		<-release
		return nil
	}
	p := startProbed(t, func(c *expertnode.Config) { c.Service.Executor = fake })
	fwd := []string{"service", "ix.v1.ExpertService", "method", "Forward"}
	c := ixv1.NewExpertServiceClient(dial(t, p.node.Addr, ""))
	done := make(chan error, 1)
	go func() {
		_, err := c.Forward(context.Background(), request())
		done <- err
	}()
	<-running
	if v := value(scrape(t, p.addr), "ix_node_rpc_in_flight", fwd...); v != 1 {
		t.Errorf("ix_node_rpc_in_flight = %v during a call, want 1", v)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := value(scrape(t, p.addr), "ix_node_rpc_in_flight", fwd...); v != 0 {
		t.Errorf("ix_node_rpc_in_flight = %v after the call, want 0", v)
	}
}

// The metrics registry refuses a second node's collectors: New says so.
func TestMetricsRegisterError(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := expertnode.DefaultConfig()
	cfg.Service.Model, cfg.Service.Executor, cfg.Metrics = info(), experttest.New(layers, nExp, embd), reg
	if _, err := expertnode.New(cfg); err != nil {
		t.Fatal(err)
	}
	_, err := expertnode.New(cfg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Fatalf("second node on one registry: %v, want AlreadyRegisteredError", err)
	}
}

// A node that holds nothing yet (gossip mode starts empty) is ready: it
// can take Loads.
func TestProbesEmptyNodeIsReady(t *testing.T) {
	p := startProbed(t, func(c *expertnode.Config) { c.Service.Holdings = nil })
	if code, why := readyz(t, p.addr); code != http.StatusOK {
		t.Errorf("/readyz of an empty node: %d %q, want 200", code, why)
	}
	if st, err := check(t, healthClient(t, p.addr), ""); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health of an empty node: %v %v, want SERVING", st, err)
	}
	if v := value(scrape(t, p.addr), "ix_node_held_experts"); v != 0 {
		t.Errorf("ix_node_held_experts = %v, want 0", v)
	}
}
