package expertnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

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
}

// DefaultConfig returns the defaults of the service and the gRPC server
// and a 30 s drain.
func DefaultConfig() Config {
	return Config{Service: DefaultServiceConfig(), RPC: rpc.DefaultServerConfig(), ShutdownTimeout: 30 * time.Second}
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
	cfg Config
	svc *Service
	rpc *rpc.Server
	log *slog.Logger
}

// New builds a Server; Serve runs it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
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
	rs, err := rpc.NewServer(rc)
	if err != nil {
		return nil, err
	}
	ixv1.RegisterExpertServiceServer(rs.GRPC, svc)
	log := cfg.Service.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, svc: svc, rpc: rs, log: log}, nil
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
