package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inference-x/inference-x/admin"
	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/rpc"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

// startAdmin runs an admin API over a placement manager of three fake
// expert nodes (2 MoE layers x 8 experts, R = 2) and returns its address.
func startAdmin(t *testing.T) string {
	t.Helper()
	return startAdminWith(t, admin.ServerConfig(rpc.Security{}, nil))
}

// startAdminWith is startAdmin with the server's config.
func startAdminWith(t *testing.T, scfg rpc.ServerConfig) string {
	t.Helper()
	info := router.ModelInfo{Arch: "fake", Fingerprint: "fake", Layers: 3, Embd: 64, Experts: 8, ExpertsUsed: 2,
		MoELayers: []int{1, 2}, ActType: []gguf.Type{gguf.TypeF32, gguf.TypeF32, gguf.TypeF32}}
	rc := router.DefaultConfig()
	rc.Model = info
	pc := router.PlanConfig{Experts: 8, ExpertBytes: []int64{0, 1 << 20, 1 << 20}, Replicas: 2}
	mgr, err := router.NewManager(router.ManagerConfig{Router: rc, Plan: pc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Close() })
	var members []router.Member
	for _, id := range []string{"node-a", "node-b", "node-c"} {
		cfg := expertnode.DefaultConfig()
		cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Holdings = id, info, router.Holdings{}
		cfg.Service.Executor = experttest.New(3, 8, 64)
		n := experttest.StartNode(t, cfg)
		members = append(members, router.Member{ID: id, Addr: n.Addr})
	}
	if err := mgr.Update(context.Background(), members); err != nil {
		t.Fatal(err)
	}
	srv, err := rpc.NewServer(scfg)
	if err != nil {
		t.Fatal(err)
	}
	ixv1.RegisterAdminServiceServer(srv.GRPC, admin.NewService(mgr, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.GRPC.Serve(ln)
	t.Cleanup(srv.GRPC.Stop)
	return ln.Addr().String()
}

func TestClusterCommands(t *testing.T) {
	addr := startAdmin(t)
	t.Setenv(CoordinatorEnv, addr)

	out, errs, code := runIxctl(t, "", "status", "-o", "json")
	if code != 0 {
		t.Fatalf("status: %s", errs)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	// The contract: {"nodes": [{"id","address","state","experts","bytes","load"}], "replicas", "under_replicated"}.
	nodes := st["nodes"].([]any)
	if len(nodes) != 3 || st["replicas"].(float64) != 2 || st["under_replicated"].(float64) != 0 {
		t.Fatalf("status: %s", out)
	}
	for _, k := range []string{"id", "address", "state", "experts", "bytes", "load"} {
		if _, ok := nodes[0].(map[string]any)[k]; !ok {
			t.Fatalf("node has no %q: %s", k, out)
		}
	}

	out, _, code = runIxctl(t, "", "status")
	if code != 0 || !strings.Contains(out, "NODE") || !strings.Contains(out, "node-b") || !strings.Contains(out, "alive") {
		t.Fatalf("status table:\n%s", out)
	}

	placement := filepath.Join(t.TempDir(), "placement.json")
	out, errs, code = runIxctl(t, "", "plan", "--nodes", "node-a,node-b,node-c,node-d", "--write", placement, "-o", "json")
	if code != 0 {
		t.Fatalf("plan: %s", errs)
	}
	var p PlanJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil || len(p.Nodes) != 4 || p.ExpertsMoved == 0 {
		t.Fatalf("plan: %v %s", err, out)
	}
	pf, err := router.ReadPlacementFile(placement)
	if err != nil || len(pf.Nodes) != 4 {
		t.Fatalf("placement file: %v %+v", err, pf)
	}
	if b, _ := os.ReadFile(placement); !strings.Contains(string(b), `"node-d"`) {
		t.Fatalf("placement file:\n%s", b)
	}

	// More replicas than nodes to hold them: refused, naming both numbers.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "--replicas", "100"}, "--replicas 100 is more than the 3 expert nodes"},
		{[]string{"plan", "--replicas", "4"}, "--replicas 4 is more than the 3 expert nodes"},
		{[]string{"plan", "--nodes", "node-a,node-b", "--replicas", "3"}, "--replicas 3 is more than the 2 expert nodes"},
	} {
		if _, errs, code = runIxctl(t, "", c.args...); code != 1 || !strings.Contains(errs, c.want) {
			t.Fatalf("ixctl %s: exit %d, %s; want %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}

	out, errs, code = runIxctl(t, "", "drain", "node-a", "-o", "json")
	if code != 0 {
		t.Fatalf("drain: %s", errs)
	}
	var after StatusJSON
	json.Unmarshal([]byte(out), &after)
	if after.Nodes[0].ID != "node-a" || after.Nodes[0].State != "draining" || after.Nodes[0].Experts != 0 {
		t.Fatalf("after drain: %s", out)
	}
	out, errs, code = runIxctl(t, "", "undrain", "node-a", "-o", "json")
	if code != 0 {
		t.Fatalf("undrain: %s", errs)
	}
	after = StatusJSON{}
	json.Unmarshal([]byte(out), &after)
	if after.Nodes[0].ID != "node-a" || after.Nodes[0].State != "alive" || after.Nodes[0].Experts == 0 {
		t.Fatalf("after undrain: %s", out)
	}
	if _, errs, code = runIxctl(t, "", "undrain", "nowhere"); code != 1 || !strings.Contains(errs, "unknown node") {
		t.Fatalf("undrain of an unknown node: %d %s", code, errs)
	}

	if _, errs, code = runIxctl(t, "", "move", "1:3", "node-a"); code != 0 {
		t.Fatalf("move: %s", errs)
	}
	if _, errs, code = runIxctl(t, "", "move", "1:3", "nowhere"); code != 1 || !strings.Contains(errs, "unknown node") || strings.Contains(errs, "rpc error") || !strings.HasPrefix(errs, "ixctl: ") {
		t.Fatalf("move to an unknown node: %d %s", code, errs)
	}
	if _, errs, code = runIxctl(t, "", "move", "13", "node-a"); code == 0 || !strings.Contains(errs, "LAYER:EXPERT") {
		t.Fatalf("bad expert: %s", errs)
	}
	out, errs, code = runIxctl(t, "", "apply", "--replicas", "1", "-o", "json") // 2 nodes left undrained
	if code != 0 {
		t.Fatalf("apply: %s", errs)
	}
	json.Unmarshal([]byte(out), &after)
	if after.Replicas != 1 {
		t.Fatalf("apply: %s", out)
	}
	t.Setenv(CoordinatorEnv, "")
	if _, errs, code = runIxctl(t, "", "status"); code == 0 || !strings.Contains(errs, CoordinatorEnv) {
		t.Fatalf("no coordinator: %s", errs)
	}
}

// TestCoordinatorDown: with nothing listening, cluster commands fail after
// --dial-timeout with the connection error, not after --timeout.
func TestCoordinatorDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	o := &StatusOptions{ClusterFlags{Coordinator: addr, Timeout: 10 * time.Minute, DialTimeout: 200 * time.Millisecond}}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	err = o.Run(ctx, cli.Streams{Out: io.Discard, Err: io.Discard})
	var ue *UnreachableError
	if !errors.As(err, &ue) || ctx.Err() != nil {
		t.Fatalf("status against a closed port: %v (context: %v)", err, ctx.Err())
	}

	var out, errb bytes.Buffer
	code := cli.Run(ctx, "ixctl", newRoot, []string{"status", "--coordinator", addr, "--timeout", "10m", "--dial-timeout", "200ms"},
		cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	msg := errb.String()
	if code != 1 || !strings.Contains(msg, "ixctl: cannot reach the coordinator at "+addr+" within 200ms: ") ||
		!strings.Contains(msg, "connection refused") || strings.Contains(msg, "rpc error:") {
		t.Fatalf("exit %d:\n%s", code, msg)
	}
	t.Log(msg)
	if code := cli.Run(ctx, "ixctl", newRoot, []string{"status", "--coordinator", addr, "--dial-timeout", "0s"},
		cli.Streams{Out: &out, Err: &errb}); code != cli.ExitUsage {
		t.Fatalf("--dial-timeout 0s: exit %d", code)
	}
}
