package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/inference-x/inference-x/admin"
	"github.com/inference-x/inference-x/internal/rpc"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// TestAdminTokenBeforeReading: the admin API with a token refuses a call
// without it from its headers, before its request is read (no
// interceptor sees it), and takes the call with it; requests past
// admin.MaxRequestBytes are refused.
func TestAdminTokenBeforeReading(t *testing.T) {
	var reached atomic.Int64
	cfg := admin.ServerConfig(rpc.Security{Token: "adm"}, nil)
	cfg.Interceptors = []grpc.UnaryServerInterceptor{func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		reached.Add(1)
		return h(ctx, req)
	}}
	addr := startAdminWith(t, cfg)
	client := func(token string) ixv1.AdminServiceClient {
		cc := rpc.DefaultClientConfig()
		cc.Security.Token = token
		conn, err := rpc.Dial(addr, cc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return ixv1.NewAdminServiceClient(conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// 3 MiB of node names: under the request limit, so only the token
	// stops it.
	big := &ixv1.PlanPlacementRequest{Nodes: []string{strings.Repeat("n", 3<<20)}}
	for _, tok := range []string{"", "wrong"} {
		if _, err := client(tok).PlanPlacement(ctx, big); status.Code(err) != codes.Unauthenticated {
			t.Errorf("token %q: %v, want Unauthenticated", tok, err)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("%d unauthenticated calls were read", n)
	}
	good := client("adm")
	if _, err := good.ClusterStatus(ctx, &ixv1.ClusterStatusRequest{}); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	huge := &ixv1.PlanPlacementRequest{Nodes: []string{strings.Repeat("n", admin.MaxRequestBytes)}}
	if _, err := good.PlanPlacement(ctx, huge); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a request over %d bytes: %v, want ResourceExhausted", admin.MaxRequestBytes, err)
	}
}
