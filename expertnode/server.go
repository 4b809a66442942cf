package expertnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/inference-x/inference-x/internal/rpc"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// Config configures an expert node's server.
type Config struct {
	Service ServiceConfig
	RPC     rpc.ServerConfig
	// ShutdownTimeout bounds the drain of in-flight calls at shutdown;
	// calls still running then are cancelled.
	ShutdownTimeout time.Duration
	// Metrics, when set, gets the node's metrics (ix_node_*: RPC counts,
	// latencies and sizes, in-flight calls, holdings, readiness).
	Metrics prometheus.Registerer
	// FileCheck, when set, reports whether the model file is still the
	// one mapped ((*gguf.File).Check); the node is not ready while it
	// fails. It is polled by Ready (Check and /readyz), so a Watch stream
	// learns of a changed file at the next other change of state.
	FileCheck func() error
}

// DefaultMaxPendingCalls is the default bound on the calls a node admits
// at once (rpc.ServerConfig.MaxPendingCalls): four coordinators' calls
// (router.Config.WorkersPerNode each), so the messages received and not
// yet answered take at most 16 × 64 MiB by default, more calls are
// refused before they are read, and callers go to another replica.
const DefaultMaxPendingCalls = 16

// DefaultConfig returns the defaults of the service and the gRPC server
// (DefaultMaxPendingCalls calls admitted at once) and a 30 s drain.
func DefaultConfig() Config {
	rc := rpc.DefaultServerConfig()
	rc.MaxPendingCalls = DefaultMaxPendingCalls
	return Config{Service: DefaultServiceConfig(), RPC: rc, ShutdownTimeout: 30 * time.Second}
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.ShutdownTimeout <= 0 {
		return errors.New("expertnode: ShutdownTimeout must be positive")
	}
	if err := c.RPC.Validate(); err != nil {
		return err
	}
	return c.Service.Validate()
}

// Server is an expert node: the expert service on the project's gRPC
// server, with health reporting and graceful shutdown.
type Server struct {
	cfg   Config
	svc   *Service
	rpc   *rpc.Server
	log   *slog.Logger
	state atomic.Int32 // a serveState
}

// serveState is where a Server is in its life.
type serveState int32

const (
	stateNew serveState = iota
	stateServing
	stateStopped
)

// New builds a Server; Serve runs it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Service.MaxResponseBytes == 0 {
		cfg.Service.MaxResponseBytes = cfg.RPC.MaxSendBytes // 0 too: the same default
	}
	svc, err := NewService(cfg.Service)
	if err != nil {
		return nil, err
	}
	rc := cfg.RPC
	rc.Status = Status
	if rc.Logger == nil {
		rc.Logger = cfg.Service.Logger
	}
	var m *metrics
	if cfg.Metrics != nil {
		m = newMetrics()
		rc.Interceptors = append(append([]grpc.UnaryServerInterceptor{}, rc.Interceptors...), m.intercept)
		rc.Refused = m.refuse
	}
	rs, err := rpc.NewServer(rc)
	if err != nil {
		return nil, err
	}
	ixv1.RegisterExpertServiceServer(rs.GRPC, svc)
	log := cfg.Service.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, svc: svc, rpc: rs, log: log}
	if m != nil {
		if err := m.register(cfg.Metrics, s); err != nil {
			return nil, fmt.Errorf("expertnode: metrics: %w", err)
		}
	}
	return s, nil
}

// Ready reports whether the node can serve every expert it holds, and
// when not, why: it is not serving yet or any more, it is draining, or a
// Load is mapping experts. A node that holds nothing is ready (it can
// take Loads). The health port's gRPC health and /readyz report this.
func (s *Server) Ready() (bool, string) {
	switch serveState(s.state.Load()) {
	case stateNew:
		return false, "starting: not serving yet"
	case stateStopped:
		return false, "stopped"
	}
	if why := s.svc.unready(); why != "" {
		return false, why
	}
	if s.cfg.FileCheck != nil {
		if err := s.cfg.FileCheck(); err != nil {
			return false, err.Error()
		}
	}
	return true, ""
}

// Live reports whether the serve loop is running or yet to start: false
// once Serve has returned.
func (s *Server) Live() bool { return serveState(s.state.Load()) != stateStopped }

// Changed returns a channel closed at the next change of Ready or Live.
func (s *Server) Changed() <-chan struct{} { return s.svc.changes.wait() }

func (s *Server) setState(st serveState) {
	s.state.Store(int32(st))
	s.svc.changes.notify()
}

// Service returns the expert service (for counters and holdings).
func (s *Server) Service() *Service { return s.svc }

// Serve serves on lis until ctx ends, then shuts down in order: health
// NOT_SERVING, drain in-flight calls for up to ShutdownTimeout, stop.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.rpc.SetServing("", true)
	s.rpc.SetServing(ixv1.ExpertService_ServiceDesc.ServiceName, true)
	errc := make(chan error, 1)
	go func() { errc <- s.rpc.GRPC.Serve(lis) }()
	s.setState(stateServing)
	defer s.setState(stateStopped)
	s.log.Info("expert node serving", "addr", lis.Addr().String(), "node", s.cfg.Service.NodeID,
		"model", s.cfg.Service.Model.Fingerprint, "moe_layers", len(s.cfg.Service.Model.MoELayers))
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("expertnode: serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	s.svc.Drain()
	s.log.Info("shutting down: draining in-flight calls", "in_flight", s.svc.InFlight(), "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.rpc.Shutdown(sctx)
	<-errc
	s.log.Info("expert node stopped", "forward_calls", s.svc.calls.Load())
	return nil
}
