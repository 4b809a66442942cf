package expertnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// LivenessService is the gRPC health service name that reports liveness
// instead of readiness: a probe that restarts the process must not fail
// while it drains or loads experts.
const LivenessService = "liveness"

// Probes serve an expert node's health in plaintext on their own port,
// for the kubelet and load balancers: the gRPC health service
// (grpc.health.v1, which the kubelet's grpc probe dials without TLS over
// HTTP/2 with prior knowledge) and HTTP GET /livez and /readyz, on one
// port. They expose nothing but health (and /metrics when Handle adds
// it), so they need neither TLS nor the token.
//
// Service "" and ix.v1.ExpertService report Server.Ready, as /readyz
// does; service "liveness" reports Server.Live, as /livez does. Before
// Attach the node is live and not ready (its model is opening).
type Probes struct {
	log      *slog.Logger
	src      atomic.Pointer[Server]
	attached notifier
	done     chan struct{}
	stop     sync.Once
	grpc     *grpc.Server
	mux      *http.ServeMux
	http     *http.Server
}

// NewProbes makes the probe server; Serve runs it.
func NewProbes(log *slog.Logger) *Probes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Probes{log: log, done: make(chan struct{}), grpc: grpc.NewServer(), mux: http.NewServeMux()}
	healthpb.RegisterHealthServer(p.grpc, probeHealth{p: p})
	p.mux.HandleFunc("/livez", p.livez)
	p.mux.HandleFunc("/readyz", p.readyz)
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	p.http = &http.Server{Handler: p, Protocols: &protos, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return p
}

// Attach makes s the node whose health the probes report.
func (p *Probes) Attach(s *Server) {
	p.src.Store(s)
	p.attached.notify()
}

// Handle adds an HTTP handler beside /livez and /readyz (/metrics when
// both listen on one address). Call it before Serve.
func (p *Probes) Handle(pattern string, h http.Handler) { p.mux.Handle(pattern, h) }

// Serve serves on lis until Shutdown.
func (p *Probes) Serve(lis net.Listener) error {
	p.log.Info("health serving (plaintext): gRPC health, /livez, /readyz", "addr", lis.Addr().String())
	if err := p.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("expertnode: health: %w", err)
	}
	return nil
}

// Shutdown ends Watch streams and stops the server, waiting for other
// requests until ctx ends.
func (p *Probes) Shutdown(ctx context.Context) error {
	p.stop.Do(func() { close(p.done) })
	err := p.http.Shutdown(ctx)
	p.grpc.Stop()
	return err
}

// ServeHTTP sends gRPC requests (HTTP/2, content-type application/grpc)
// to the health service and others to /livez, /readyz and Handle's.
func (p *Probes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		p.grpc.ServeHTTP(w, r)
		return
	}
	p.mux.ServeHTTP(w, r)
}

// Ready reports the attached node's readiness and why not.
func (p *Probes) Ready() (bool, string) {
	s := p.src.Load()
	if s == nil {
		return false, "starting: opening the model"
	}
	return s.Ready()
}

// Live reports whether the attached node's serve loop is alive (true
// before Attach: the process is starting).
func (p *Probes) Live() bool {
	s := p.src.Load()
	return s == nil || s.Live()
}

// changed returns a channel closed at the next change of what the probes
// report.
func (p *Probes) changed() (attach, node <-chan struct{}) {
	attach = p.attached.wait()
	if s := p.src.Load(); s != nil {
		node = s.Changed()
	}
	return attach, node
}

// probeBody is the JSON of /livez and /readyz.
type probeBody struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (p *Probes) livez(w http.ResponseWriter, r *http.Request) {
	if p.Live() {
		writeProbe(w, r, http.StatusOK, probeBody{Status: "live"})
		return
	}
	writeProbe(w, r, http.StatusServiceUnavailable, probeBody{Status: "not live", Reason: "the serve loop has stopped"})
}

func (p *Probes) readyz(w http.ResponseWriter, r *http.Request) {
	if ok, why := p.Ready(); !ok {
		writeProbe(w, r, http.StatusServiceUnavailable, probeBody{Status: "not ready", Reason: why})
		return
	}
	writeProbe(w, r, http.StatusOK, probeBody{Status: "ready"})
}

func writeProbe(w http.ResponseWriter, r *http.Request, code int, b probeBody) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		json.NewEncoder(w).Encode(b)
	}
}

// probeHealth is grpc.health.v1.Health over the probes.
type probeHealth struct {
	healthpb.UnimplementedHealthServer
	p *Probes
}

// status returns the status of service, false for an unknown service.
func (h probeHealth) status(service string) (healthpb.HealthCheckResponse_ServingStatus, bool) {
	var ok bool
	switch service {
	case "", ixv1.ExpertService_ServiceDesc.ServiceName:
		ok, _ = h.p.Ready()
	case LivenessService:
		ok = h.p.Live()
	default:
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN, false
	}
	if ok {
		return healthpb.HealthCheckResponse_SERVING, true
	}
	return healthpb.HealthCheckResponse_NOT_SERVING, true
}

// Check implements healthpb.HealthServer.
func (h probeHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st, ok := h.status(req.GetService())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// Watch implements healthpb.HealthServer: the status now, then each
// change, until the caller leaves or the probes shut down.
func (h probeHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	last := healthpb.HealthCheckResponse_ServingStatus(-1)
	for {
		attach, node := h.p.changed() // before reading, so no change is missed
		st, _ := h.status(req.GetService())
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-attach:
		case <-node:
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		case <-h.p.done:
			return status.Error(codes.Unavailable, "health server shutting down")
		}
	}
}

// notifier broadcasts changes: wait returns a channel that the next
// notify closes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
