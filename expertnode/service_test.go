package expertnode_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/kernels"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

const (
	layers  = 3
	nExp    = 16
	embd    = 256
	fpModel = "test-model"
)

func info() router.ModelInfo {
	return router.ModelInfo{Arch: "fake", Fingerprint: fpModel, Layers: layers, Embd: embd, Experts: nExp, ExpertsUsed: 4,
		MoELayers: []int{1, 2}, ActType: []gguf.Type{0, gguf.TypeQ8_0, gguf.TypeQ8_0}}
}

// start serves a node holding experts 0-7 of layers 1 and 2, with the
// token "s3cret" and a 256 KiB message limit.
func start(t *testing.T) (*experttest.Node, *experttest.Backend, ixv1.ExpertServiceClient) {
	t.Helper()
	fake := experttest.New(layers, nExp, embd)
	cfg := expertnode.DefaultConfig()
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = "n1", info(), fake
	var s router.Set
	s.AddRange(0, 7)
	cfg.Service.Holdings = router.Uniform(s, []int{1, 2})
	cfg.RPC.Security.Token = "s3cret"
	cfg.RPC.MaxRecvBytes = 256 << 10
	cfg.ShutdownTimeout = 5 * time.Second
	n := experttest.StartNode(t, cfg)
	cc := dial(t, n.Addr, "s3cret")
	return n, fake, ixv1.NewExpertServiceClient(cc)
}

func dial(t *testing.T, addr, token string) *grpc.ClientConn {
	t.Helper()
	cfg := rpc.DefaultClientConfig()
	cfg.Security.Token = token
	cfg.MaxSendBytes = 16 << 20
	cc, err := rpc.Dial(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// request is a valid call: two rows of layer 1 on experts 1,2 and 3.
func request() *ixv1.ForwardRequest {
	b := experttest.Batch(1, 2, 2, embd, 8, gguf.TypeQ8_0)
	rb := kernels.ActivationBytes(gguf.TypeQ8_0, embd)
	req := &ixv1.ForwardRequest{Layer: 1, ActivationType: ixv1.ActivationType_ACTIVATION_TYPE_Q8_0, ModelFingerprint: fpModel}
	for i := range 2 {
		req.Rows = append(req.Rows, &ixv1.ForwardRow{
			Activation: b.Q[i*rb : (i+1)*rb],
			Experts:    []uint32{uint32(b.Experts[2*i]), uint32(b.Experts[2*i+1])},
			Weights:    b.Weights[2*i : 2*i+2],
			GroupSizes: []uint32{1, 1},
		})
	}
	return req
}

func TestForwardSums(t *testing.T) {
	_, _, c := start(t)
	req := request()
	req.Rows[1].GroupSizes = nil // one group
	resp, err := c.Forward(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(resp.GetSums()), 3*embd*4; got != want {
		t.Fatalf("%d bytes of sums, want %d", got, want)
	}
	// row 1's single group equals the sum of its two terms as the backend adds them
	rb := kernels.ActivationBytes(gguf.TypeQ8_0, embd)
	r := req.Rows[1]
	b := &experts.Batch{N: 1, K: 2, Embd: embd, X: make([]float32, embd), Q: r.Activation[:rb], QType: gguf.TypeQ8_0,
		Experts: []int32{int32(r.Experts[0]), int32(r.Experts[1])}, Weights: r.Weights}
	want := make([]float32, embd)
	if err := experttest.New(layers, nExp, embd).Forward(context.Background(), 1, b, want); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, embd)
	rpc.Floats(got, resp.GetSums()[2*embd*4:])
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sum[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestBadInputKeepsServing(t *testing.T) {
	_, _, c := start(t)
	cases := []struct {
		name string
		edit func(*ixv1.ForwardRequest)
		code codes.Code
	}{
		{"dense layer", func(r *ixv1.ForwardRequest) { r.Layer = 0 }, codes.InvalidArgument},
		{"layer out of range", func(r *ixv1.ForwardRequest) { r.Layer = 99 }, codes.InvalidArgument},
		{"unknown expert", func(r *ixv1.ForwardRequest) { r.Rows[0].Experts[0] = nExp }, codes.InvalidArgument},
		{"short vector", func(r *ixv1.ForwardRequest) { r.Rows[1].Activation = r.Rows[1].Activation[:10] }, codes.InvalidArgument},
		{"wrong activation type", func(r *ixv1.ForwardRequest) {
			r.ActivationType = ixv1.ActivationType_ACTIVATION_TYPE_Q8_K
		}, codes.InvalidArgument},
		{"f32 of the wrong length", func(r *ixv1.ForwardRequest) {
			r.ActivationType = ixv1.ActivationType_ACTIVATION_TYPE_F32
		}, codes.InvalidArgument},
		{"unspecified type", func(r *ixv1.ForwardRequest) { r.ActivationType = 0 }, codes.InvalidArgument},
		{"weights missing", func(r *ixv1.ForwardRequest) { r.Rows[0].Weights = r.Rows[0].Weights[:1] }, codes.InvalidArgument},
		{"bad groups", func(r *ixv1.ForwardRequest) { r.Rows[0].GroupSizes = []uint32{3} }, codes.InvalidArgument},
		{"zero group", func(r *ixv1.ForwardRequest) { r.Rows[0].GroupSizes = []uint32{0, 2} }, codes.InvalidArgument},
		{"no rows", func(r *ixv1.ForwardRequest) { r.Rows = nil }, codes.InvalidArgument},
		{"NaN scale", func(r *ixv1.ForwardRequest) { r.Rows[1].Activation[34], r.Rows[1].Activation[35] = 0x00, 0x7e }, codes.InvalidArgument},
		{"infinite scale", func(r *ixv1.ForwardRequest) { r.Rows[0].Activation[0], r.Rows[0].Activation[1] = 0x00, 0xfc }, codes.InvalidArgument},
		{"f32 NaN", func(r *ixv1.ForwardRequest) {
			r.ActivationType = ixv1.ActivationType_ACTIVATION_TYPE_F32
			for _, row := range r.Rows {
				row.Activation = make([]byte, 4*embd)
			}
			binary.LittleEndian.PutUint32(r.Rows[0].Activation[4*7:], 0x7fc00000)
		}, codes.InvalidArgument},
		{"f32 infinity", func(r *ixv1.ForwardRequest) {
			r.ActivationType = ixv1.ActivationType_ACTIVATION_TYPE_F32
			for _, row := range r.Rows {
				row.Activation = make([]byte, 4*embd)
			}
			binary.LittleEndian.PutUint32(r.Rows[1].Activation[4*(embd-1):], 0xff800000)
		}, codes.InvalidArgument},
		{"not held", func(r *ixv1.ForwardRequest) { r.Rows[0].Experts[0] = 12 }, codes.FailedPrecondition},
		{"other model", func(r *ixv1.ForwardRequest) { r.ModelFingerprint = "other" }, codes.FailedPrecondition},
		{"oversized", func(r *ixv1.ForwardRequest) {
			r.Rows[0].Activation = make([]byte, 300<<10)
		}, codes.ResourceExhausted},
	}
	for _, tc := range cases {
		req := request()
		tc.edit(req)
		_, err := c.Forward(context.Background(), req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want code %v", tc.name, err, tc.code)
		}
	}
	if _, err := c.Forward(context.Background(), request()); err != nil {
		t.Fatalf("a good call after bad ones: %v", err)
	}
	st, err := c.Status(context.Background(), &ixv1.StatusRequest{})
	if err != nil || !st.GetServing() || st.GetForwardCalls() != 1 {
		t.Fatalf("status %v, %v", st, err)
	}
}

func TestToken(t *testing.T) {
	n, _, _ := start(t)
	for _, tok := range []string{"", "wrong"} {
		c := ixv1.NewExpertServiceClient(dial(t, n.Addr, tok))
		if _, err := c.Status(context.Background(), &ixv1.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("token %q: %v, want Unauthenticated", tok, err)
		}
	}
	// health probes need no token
	h := healthpb.NewHealthClient(dial(t, n.Addr, ""))
	resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "ix.v1.ExpertService"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v, %v", resp, err)
	}
}

func TestLoadRelease(t *testing.T) {
	_, _, c := start(t)
	req := request()
	req.Rows[0].Experts[0] = 12
	if _, err := c.Forward(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("before load: %v", err)
	}
	set := []*ixv1.LayerExperts{{Layer: 1, Ranges: []*ixv1.ExpertRange{{First: 12, Last: 13}}}}
	if _, err := c.Load(context.Background(), &ixv1.LoadRequest{Experts: set, ModelFingerprint: "other"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a Load for another model: %v, want FailedPrecondition", err)
	}
	if _, err := c.Forward(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("after a refused load: %v", err)
	}
	lr, err := c.Load(context.Background(), &ixv1.LoadRequest{Experts: set, ModelFingerprint: fpModel})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Forward(context.Background(), req); err != nil {
		t.Fatalf("after load: %v", err)
	}
	rr, err := c.Release(context.Background(), &ixv1.ReleaseRequest{Experts: set})
	if err != nil || rr.GetHoldingsVersion() <= lr.GetHoldingsVersion() {
		t.Fatalf("release: %v %v", rr, err)
	}
	if _, err := c.Forward(context.Background(), req); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("after release: %v", err)
	}
	bad := []*ixv1.LayerExperts{{Layer: 0, Ranges: []*ixv1.ExpertRange{{First: 1, Last: 1}}}}
	if _, err := c.Load(context.Background(), &ixv1.LoadRequest{Experts: bad}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("load of a dense layer: %v", err)
	}
}

func TestDeadline(t *testing.T) {
	_, fake, c := start(t)
	fake.Hook = func(ctx context.Context, _ int, _ *experts.Batch) error {
		<-ctx.Done()
		return ctx.Err()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Forward(ctx, request()); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("%v, want DeadlineExceeded", err)
	}
}

func TestGracefulShutdownDrains(t *testing.T) {
	n, fake, c := start(t)
	entered, release := make(chan struct{}), make(chan struct{})
	fake.Hook = func(ctx context.Context, _ int, _ *experts.Batch) error {
		close(entered)
		<-release
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Forward(context.Background(), request())
		done <- err
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- n.Stop() }()
	// the node reports draining while the call runs
	deadline := time.Now().Add(5 * time.Second)
	for n.Server.Service().InFlight() != 1 || !draining(n) {
		if time.Now().After(deadline) {
			t.Fatal("node never started draining")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("in-flight call failed during graceful shutdown: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func draining(n *experttest.Node) bool {
	st, _ := n.Server.Service().Status(context.Background(), nil)
	return !st.GetServing()
}

func TestStatusOfErrors(t *testing.T) {
	if c := expertnode.Status(context.DeadlineExceeded).Code(); c != codes.DeadlineExceeded {
		t.Errorf("deadline: %v", c)
	}
	if c := expertnode.Status(errors.New("boom")).Code(); c != codes.Internal {
		t.Errorf("other: %v", c)
	}
	if c := expertnode.Status(experts.ErrUnknownExpert).Code(); c != codes.InvalidArgument {
		t.Errorf("unknown expert: %v", c)
	}
}

// TestLoadCapacity: a node with room for 18 experts (it holds 16) loads
// two more, then refuses a third with RESOURCE_EXHAUSTED naming the
// shortfall; a node whose file lacks an expert refuses it as unavailable.
func TestLoadCapacity(t *testing.T) {
	cfg := expertnode.DefaultServiceConfig()
	cfg.NodeID, cfg.Model, cfg.Executor = "n1", info(), experttest.New(layers, nExp, embd)
	var s router.Set
	s.AddRange(0, 7)
	cfg.Holdings = router.Uniform(s, []int{1, 2})
	cfg.Capacity, cfg.ExpertBytes = 18*1000, []int64{0, 1000, 1000}
	var avail router.Set
	avail.AddRange(0, 11)
	cfg.Available = router.Uniform(avail, []int{1, 2})
	svc, err := expertnode.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	load := func(l, first, last int) error {
		_, err := svc.Load(context.Background(), &ixv1.LoadRequest{Experts: []*ixv1.LayerExperts{
			{Layer: uint32(l), Ranges: []*ixv1.ExpertRange{{First: uint32(first), Last: uint32(last)}}}}})
		return err
	}
	if err := load(1, 8, 9); err != nil {
		t.Fatal(err)
	}
	err = load(2, 8, 8)
	if !errors.Is(err, expertnode.ErrNoRoom) || expertnode.Status(err).Code() != codes.ResourceExhausted ||
		!strings.Contains(err.Error(), "1000 B short") {
		t.Fatalf("load past capacity: %v", err)
	}
	if err := load(1, 12, 12); !errors.Is(err, expertnode.ErrNotAvailable) {
		t.Fatalf("load of an expert the file lacks: %v", err)
	}
	cfg.Capacity = 1000
	if _, err := expertnode.NewService(cfg); !errors.Is(err, expertnode.ErrNoRoom) {
		t.Fatalf("holdings over capacity at start: %v", err)
	}
}
