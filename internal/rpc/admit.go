package rpc

import (
	"context"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// healthPrefix starts the methods of the standard health service, which
// need no token (probes carry none and learn nothing) and are never
// refused for load.
const healthPrefix = "/grpc.health.v1.Health/"

// admission decides from a call's headers, before gRPC reads any of its
// message, whether the server takes it: the token check and the bound on
// the calls admitted at once. It is the server's InTapHandle, which runs
// on the connection's reader goroutine: it must not block.
type admission struct {
	token   string
	max     int64 // 0: no bound
	pending atomic.Int64
	// refused, when set, is told of every call turned away.
	refused func(method string, code codes.Code)
}

// tap implements tap.ServerInHandle. A refused call gets its status at
// once and the transport discards whatever of its body arrives, so an
// unauthenticated or surplus caller costs no memory beyond its frames in
// flight.
func (a *admission) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if strings.HasPrefix(info.FullMethodName, healthPrefix) {
		return ctx, nil
	}
	if a.token != "" && !tokenOK(info.Header.Get("authorization"), a.token) {
		return nil, a.refuse(info.FullMethodName, status.Error(codes.Unauthenticated, "missing or wrong token"))
	}
	if a.max <= 0 {
		return ctx, nil
	}
	if n := a.pending.Add(1); n > a.max {
		a.pending.Add(-1)
		return nil, a.refuse(info.FullMethodName, status.Errorf(codes.ResourceExhausted,
			"server busy: %d calls already admitted (its limit); retry later or on another replica", a.max))
	}
	// The stream's context ends when the call does, however it ends
	// (answered, failed to decode, cancelled, connection lost).
	context.AfterFunc(ctx, func() { a.pending.Add(-1) })
	return ctx, nil
}

func (a *admission) refuse(method string, err error) error {
	if a.refused != nil {
		a.refused(method, status.Code(err))
	}
	return err
}

// Pending returns the calls admitted and not yet ended (0 without
// ServerConfig.MaxPendingCalls).
func (s *Server) Pending() int { return int(s.admit.pending.Load()) }
