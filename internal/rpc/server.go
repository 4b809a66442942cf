package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// DefaultMaxMessageBytes bounds one gRPC message when a config leaves it 0:
// a prefill batch of 512 rows of a 7168-wide model with 8 f32 sums each is
// about 117 MiB, so callers split larger batches (see router.Config).
const DefaultMaxMessageBytes = 64 << 20

// ServerConfig configures NewServer.
type ServerConfig struct {
	// Security turns on TLS (mutual with a CA) and the token check.
	Security Security
	// MaxRecvBytes and MaxSendBytes bound one message (0: DefaultMaxMessageBytes).
	// A larger request fails with RESOURCE_EXHAUSTED before it is decoded.
	MaxRecvBytes, MaxSendBytes int
	// MaxConcurrentStreams bounds the calls one connection runs at once
	// (0: gRPC's default).
	MaxConcurrentStreams uint32
	// MaxPendingCalls bounds the calls admitted at once over all
	// connections, from their headers until they end, health checks
	// aside (0: no bound). A call past it is refused with
	// RESOURCE_EXHAUSTED before any of its message is read, so messages
	// received and not yet answered take at most MaxPendingCalls times
	// MaxRecvBytes (and as much again decoded).
	MaxPendingCalls int
	// Refused, when set, is told of every call refused from its headers
	// (a wrong token, MaxPendingCalls): such calls reach no interceptor.
	Refused func(method string, code codes.Code)
	// Status maps a handler's error to a gRPC status: the one table of a
	// service's domain errors. Nil uses StatusOf with no table.
	Status func(error) *status.Status
	// Logger gets panics and failed calls at debug level.
	Logger *slog.Logger
	// Interceptors run inside panic recovery and outside the error
	// mapping, so they see the final status of every call admitted (calls
	// refused from their headers reach none: see Refused).
	Interceptors []grpc.UnaryServerInterceptor
}

// DefaultServerConfig returns the defaults: plaintext, 64 MiB messages.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{MaxRecvBytes: DefaultMaxMessageBytes, MaxSendBytes: DefaultMaxMessageBytes}
}

// Validate checks the config.
func (c *ServerConfig) Validate() error {
	if c.MaxRecvBytes < 0 || c.MaxSendBytes < 0 || c.MaxPendingCalls < 0 {
		return errors.New("rpc: negative message size limit or pending calls")
	}
	return c.Security.Validate()
}

// Server is a gRPC server with the project's admission check (the token
// and the pending-call bound, from the headers, before a message is
// read), interceptors (panic recovery, error mapping), explicit
// message-size limits, keepalive policy and the standard health service.
// Register services on GRPC before Serve.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	log    *slog.Logger
	admit  *admission
}

// NewServer builds a Server. It is the one place gRPC servers are made.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxRecvBytes == 0 {
		cfg.MaxRecvBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxSendBytes == 0 {
		cfg.MaxSendBytes = DefaultMaxMessageBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mapErr := cfg.Status
	if mapErr == nil {
		mapErr = func(err error) *status.Status { return StatusOf(err, nil) }
	}
	admit := &admission{token: cfg.Security.Token, max: int64(cfg.MaxPendingCalls), refused: cfg.Refused}
	opts := []grpc.ServerOption{
		grpc.InTapHandle(admit.tap),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.MaxSendMsgSize(cfg.MaxSendBytes),
		grpc.ForceServerCodecV2(forwardCodec),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.InitialWindowSize(windowSize(cfg.MaxRecvBytes)),
		grpc.InitialConnWindowSize(windowSize(cfg.MaxRecvBytes)),
		grpc.ReadBufferSize(bufferSize),
		grpc.WriteBufferSize(bufferSize),
		grpc.ChainUnaryInterceptor(append(append([]grpc.UnaryServerInterceptor{recoverInterceptor(log)}, cfg.Interceptors...),
			errorInterceptor(mapErr, log))...),
	}
	if cfg.MaxConcurrentStreams > 0 {
		opts = append(opts, grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams))
	}
	creds, err := cfg.Security.serverCredentials()
	if err != nil {
		return nil, err
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	s := &Server{GRPC: grpc.NewServer(opts...), Health: health.NewServer(), log: log, admit: admit}
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	return s, nil
}

// SetServing sets the health of service ("" is the whole server).
func (s *Server) SetServing(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.Health.SetServingStatus(service, st)
}

// Shutdown stops the server in order: health NOT_SERVING for every
// service, then GracefulStop (no new calls, in-flight calls finish), and
// Stop (cancel what is left) when ctx ends first.
func (s *Server) Shutdown(ctx context.Context) {
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("graceful stop timed out; cancelling in-flight calls")
		s.GRPC.Stop()
		<-done
	}
}

// ListenAddress decides where a server listens. With TLS it is addr, but
// off loopback clients must authenticate too: mutual TLS (a CA) or a
// token, else it is an error. In plaintext a wildcard host (":7070",
// "0.0.0.0:7070", "[::]:7070") becomes 127.0.0.1 and a specific
// non-loopback host is an error. sec.Insecure lifts both refusals, with a
// warning.
func ListenAddress(addr string, sec *Security, log *slog.Logger) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("rpc: listen address %q: %w", addr, err)
	}
	switch {
	case sec.CertFile != "" && (sec.CAFile != "" || sec.Token != "" || IsLoopback(addr)):
		return addr, nil
	case sec.CertFile != "" && sec.Insecure:
		log.Warn("--insecure: TLS without client authentication off loopback; anyone who can reach it can call it", "addr", addr)
		return addr, nil
	case sec.CertFile != "":
		return "", fmt.Errorf("%w: %s with TLS but no client authentication: give --tls-ca (mutual TLS) or --token-file (or $%s), or --insecure",
			ErrInsecure, addr, TokenEnv)
	case IsLoopback(addr):
		log.Info("no TLS: listening on loopback only", "addr", addr)
		return addr, nil
	case sec.Insecure:
		log.Warn("--insecure: serving plaintext on a non-loopback address; anyone who can reach it can use it", "addr", addr)
		return addr, nil
	case host == "" || host == "0.0.0.0" || host == "::":
		lo := net.JoinHostPort("127.0.0.1", port)
		log.Info("no TLS: listening on loopback only; give --tls-cert/--tls-key (or --insecure) to serve other interfaces", "addr", lo)
		return lo, nil
	}
	return "", fmt.Errorf("%w: %s without --tls-cert/--tls-key (or --insecure)", ErrInsecure, addr)
}

// StatusOf maps err to a gRPC status: errors that already carry one keep
// it; context errors become CANCELED / DEADLINE_EXCEEDED; then table maps
// domain sentinels (matched with errors.Is, in order) to codes; anything
// else is INTERNAL. The message is err's text.
func StatusOf(err error, table []ErrorCode) *status.Status {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	for _, e := range table {
		if errors.Is(err, e.Err) {
			return status.New(e.Code, err.Error())
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	}
	return status.New(codes.Internal, err.Error())
}

// ErrorCode is one row of a service's error table.
type ErrorCode struct {
	Err  error
	Code codes.Code
}

func recoverInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in call", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
		}()
		return h(ctx, req)
	}
}

func errorInterceptor(mapErr func(error) *status.Status, log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if err != nil {
			st := mapErr(err)
			log.Debug("call failed", "method", info.FullMethod, "code", st.Code(), "err", err)
			return nil, st.Err()
		}
		return resp, nil
	}
}
