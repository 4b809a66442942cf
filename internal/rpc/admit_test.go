package rpc

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// stubExperts is an ExpertService whose Forward counts its calls and,
// when block is set, waits for it to close.
type stubExperts struct {
	ixv1.UnimplementedExpertServiceServer
	calls   atomic.Int64
	entered chan struct{}
	block   chan struct{}
}

func (s *stubExperts) Forward(ctx context.Context, _ *ixv1.ForwardRequest) (*ixv1.ForwardResponse, error) {
	s.calls.Add(1)
	if s.block != nil {
		s.entered <- struct{}{}
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &ixv1.ForwardResponse{}, nil
}

// serveStub serves stub with cfg on loopback; reached counts the calls
// that got to an interceptor (their message read and decoded), refused
// those turned away from their headers.
func serveStub(t *testing.T, cfg ServerConfig, set func(*ServerConfig), stub *stubExperts) (addr string, s *Server, reached, refused *atomic.Int64) {
	t.Helper()
	set(&cfg)
	reached, refused = new(atomic.Int64), new(atomic.Int64)
	cfg.Interceptors = []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		reached.Add(1)
		return h(ctx, req)
	}}
	cfg.Refused = func(string, codes.Code) { refused.Add(1) }
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ixv1.RegisterExpertServiceServer(s.GRPC, stub)
	s.SetServing("", true)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.GRPC.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return lis.Addr().String(), s, reached, refused
}

func stubClient(t *testing.T, addr, token string) ixv1.ExpertServiceClient {
	t.Helper()
	cfg := DefaultClientConfig()
	cfg.Security.Token = token
	cfg.MaxSendBytes = 128 << 20
	cc, err := Dial(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return ixv1.NewExpertServiceClient(cc)
}

// bigRequest is a Forward of about n bytes.
func bigRequest(n int) *ixv1.ForwardRequest {
	return &ixv1.ForwardRequest{Rows: []*ixv1.ForwardRow{{Activation: make([]byte, n), Experts: []uint32{0}, Weights: []float32{1}}}}
}

// TestTokenCheckedBeforeReading: a call without the right token is
// refused from its headers: its 60 MB message is never read into a
// message, decoded or seen by any interceptor (finding 1 of issue 17:
// the token was checked by an interceptor, after gRPC had read and
// decoded the whole message).
func TestTokenCheckedBeforeReading(t *testing.T) {
	stub := &stubExperts{}
	addr, _, reached, refused := serveStub(t, DefaultServerConfig(), withToken("tok"), stub)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, token := range []string{"wrong", ""} {
		_, err := stubClient(t, addr, token).Forward(ctx, bigRequest(60<<20))
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("token %q: %v, want Unauthenticated", token, err)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d unauthenticated calls were read and reached an interceptor", n)
	}
	if n := stub.calls.Load(); n != 0 {
		t.Errorf("%d unauthenticated calls reached the handler", n)
	}
	if n := refused.Load(); n != 2 {
		t.Errorf("refused %d calls, want 2", n)
	}
	good := stubClient(t, addr, "tok")
	if _, err := good.Forward(ctx, bigRequest(1<<10)); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	if reached.Load() != 1 || stub.calls.Load() != 1 {
		t.Errorf("the authenticated call: reached %d, handled %d; want 1, 1", reached.Load(), stub.calls.Load())
	}
	// Health checks need no token.
	if err := check(addr, Security{}); err != nil {
		t.Errorf("health without a token: %v", err)
	}
}

func withToken(tok string) func(*ServerConfig) {
	return func(c *ServerConfig) { c.Security.Token = tok }
}

// TestPendingCallsBound: past MaxPendingCalls a call is refused with
// RESOURCE_EXHAUSTED from its headers; health checks still answer; the
// slots come back when calls end, also calls that fail to decode.
func TestPendingCallsBound(t *testing.T) {
	stub := &stubExperts{entered: make(chan struct{}, 2), block: make(chan struct{})}
	cfg := DefaultServerConfig()
	cfg.MaxRecvBytes = 1 << 20
	addr, srv, reached, _ := serveStub(t, cfg, func(c *ServerConfig) { c.MaxPendingCalls = 2 }, stub)
	c := stubClient(t, addr, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Forward(ctx, bigRequest(1<<10))
			errc <- err
		}()
	}
	<-stub.entered
	<-stub.entered
	_, err := c.Forward(ctx, bigRequest(512<<10))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third call: %v, want ResourceExhausted", err)
	}
	if reached.Load() != 2 {
		t.Errorf("%d calls reached an interceptor, want the 2 admitted", reached.Load())
	}
	if err := check(addr, Security{}); err != nil {
		t.Errorf("health while full: %v", err)
	}
	close(stub.block)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	waitPending(t, srv, 0)
	// A call whose message is over the limit fails and gives its slot back.
	for range 3 {
		if _, err := c.Forward(ctx, bigRequest(2<<20)); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("oversized call: %v, want ResourceExhausted", err)
		}
	}
	waitPending(t, srv, 0)
	if _, err := c.Forward(ctx, bigRequest(1<<10)); err != nil {
		t.Fatalf("after the others ended: %v", err)
	}
}

// waitPending waits until srv has n calls admitted (slots are given back
// just after a call ends).
func waitPending(t *testing.T, srv *Server, n int) {
	t.Helper()
	for i := 0; srv.Pending() != n; i++ {
		if i == 1000 {
			t.Fatalf("%d calls pending, want %d", srv.Pending(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
