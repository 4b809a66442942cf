package rpc

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// ClientConfig configures Dial.
type ClientConfig struct {
	// Security: TLS to the server (verified with CAFile, mutual with
	// CertFile/KeyFile) and the token sent on every call.
	Security Security
	// MaxRecvBytes and MaxSendBytes bound one message (0: DefaultMaxMessageBytes).
	MaxRecvBytes, MaxSendBytes int
	// MaxReconnectDelay caps the wait between reconnection attempts to a
	// node that went away (0: 5s), so a restarted node is found quickly.
	MaxReconnectDelay time.Duration
}

// DefaultClientConfig returns the defaults: plaintext, 64 MiB messages.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{MaxRecvBytes: DefaultMaxMessageBytes, MaxSendBytes: DefaultMaxMessageBytes, MaxReconnectDelay: 5 * time.Second}
}

// Dial makes a client connection to addr (host:port). It does not block:
// the connection is made on first use. Plaintext to a non-loopback address
// is refused unless Security.Insecure.
func Dial(addr string, cfg ClientConfig) (*grpc.ClientConn, error) {
	if err := cfg.Security.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxRecvBytes == 0 {
		cfg.MaxRecvBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxSendBytes == 0 {
		cfg.MaxSendBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxReconnectDelay == 0 {
		cfg.MaxReconnectDelay = 5 * time.Second
	}
	creds, err := cfg.Security.clientCredentials()
	if err != nil {
		return nil, err
	}
	bo := backoff.DefaultConfig
	bo.MaxDelay = cfg.MaxReconnectDelay
	opts := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxRecvBytes), grpc.MaxCallSendMsgSize(cfg.MaxSendBytes),
			grpc.ForceCodecV2(forwardCodec)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 5 * time.Second}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		// Sums of a decode step are ~0.2 MB per node and of a prefill chunk
		// tens of MB: a static window of a whole message avoids waiting for
		// window updates (gRPC's default starts at 64 KiB).
		grpc.WithInitialWindowSize(windowSize(cfg.MaxRecvBytes)),
		grpc.WithInitialConnWindowSize(windowSize(cfg.MaxRecvBytes)),
		grpc.WithReadBufferSize(bufferSize),
		grpc.WithWriteBufferSize(bufferSize),
	}
	if creds != nil {
		opts = append(opts, grpc.WithTransportCredentials(creds))
	} else {
		if !IsLoopback(addr) && !cfg.Security.Insecure {
			return nil, fmt.Errorf("%w: dialling %s without TLS (give --tls-ca, or --insecure)", ErrInsecure, addr)
		}
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if cfg.Security.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCredentials{
			header:     "Bearer " + cfg.Security.Token,
			requireTLS: creds != nil,
		}))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial %s: %w", addr, err)
	}
	return cc, nil
}

// bufferSize is the socket read and write buffer of connections.
const bufferSize = 256 << 10

// windowSize is a flow-control window that holds a whole message of n
// bytes (at least gRPC's 64 KiB minimum, at most 1 GiB).
func windowSize(n int) int32 { return int32(min(max(n, 64<<10), 1<<30)) }

// Reach waits until the server of cc answers a call (a health check: any
// answer but Unavailable counts, Unimplemented or Unauthenticated too) or
// ctx ends. Give ctx a dial timeout: calls made with grpc.WaitForReady
// would otherwise wait their whole deadline for a server that is down.
// The error then carries the last connection failure (connection
// refused, TLS handshake, ...).
func Reach(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Unavailable, codes.Canceled:
		return err
	}
	return nil
}
