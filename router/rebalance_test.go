package router_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/router"
)

// liveNode is an in-process expert node behind a proxy (to kill it).
type liveNode struct {
	id    string
	node  *experttest.Node
	proxy *experttest.Proxy
}

func startEmptyNode(t *testing.T, info router.ModelInfo, id string) *liveNode {
	t.Helper()
	cfg := expertnode.DefaultConfig()
	cfg.Service.NodeID, cfg.Service.Model = id, info
	cfg.Service.Executor = experttest.New(tLayers, tExperts, tEmbd)
	cfg.Service.Holdings = router.Holdings{}
	cfg.Service.MaxConcurrent = 2
	n := experttest.StartNode(t, cfg)
	return &liveNode{id: id, node: n, proxy: experttest.StartProxy(t, n.Addr)}
}

func members(ns ...*liveNode) []router.Member {
	var out []router.Member
	for _, n := range ns {
		out = append(out, router.Member{ID: n.id, Addr: n.proxy.Addr})
	}
	return out
}

func testPlanConfig(r int) router.PlanConfig {
	c := router.PlanConfig{Experts: tExperts, ExpertBytes: make([]int64, tLayers), Replicas: r}
	for _, l := range tMoE {
		c.ExpertBytes[l] = 1000
	}
	return c
}

// checkHeld verifies that the manager's view matches what each node says
// it holds and that every expert has R holders.
func checkHeld(t *testing.T, m *router.Manager, nodes ...*liveNode) {
	t.Helper()
	st := m.Status()
	if st.UnderReplicated != 0 {
		t.Fatalf("%d experts under-replicated", st.UnderReplicated)
	}
	for _, n := range nodes {
		resp, err := n.node.Server.Service().Status(context.Background(), &ixv1.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		h, _ := router.HoldingsFromProto(resp.GetHeld(), nil)
		got := 0
		for _, s := range h {
			got += s.Len()
		}
		i := slices.IndexFunc(st.Nodes, func(s router.NodeStatus) bool { return s.ID == n.id })
		if i < 0 || st.Nodes[i].Experts != got {
			t.Fatalf("node %s holds %d experts; the manager thinks %+v", n.id, got, st.Nodes)
		}
	}
}

// TestRebalanceWithoutFailedRequests keeps routing batches (checked bit
// for bit against one backend) while a node joins, one is drained and
// leaves, and one is killed: no call fails.
func TestRebalanceWithoutFailedRequests(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	rc := router.DefaultConfig()
	rc.Model, rc.CallTimeout, rc.EjectBase = info, 2*time.Second, time.Second
	m, err := router.NewManager(router.ManagerConfig{Router: rc, Plan: testPlanConfig(2)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	a, b, c := startEmptyNode(t, info, "a"), startEmptyNode(t, info, "b"), startEmptyNode(t, info, "c")
	if err := m.Update(ctx, members(a, b, c)); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, m, a, b, c)

	ref := experttest.New(tLayers, tExperts, tEmbd)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				seed := g*100000 + i
				bt := experttest.Batch(seed, 1+i%5, tK, tEmbd, tExperts, gguf.TypeQ8_0)
				layer := tMoE[i%len(tMoE)]
				want := make([]float32, bt.N*tEmbd)
				got := make([]float32, bt.N*tEmbd)
				if err := ref.Forward(ctx, layer, bt, want); err != nil {
					panic(err)
				}
				err := m.Backend().Forward(ctx, layer, bt, got)
				if err == nil && !slices.Equal(got, want) {
					err = fmt.Errorf("layer %d seed %d: wrong sums", layer, seed)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	// progress waits until the generators have done n more calls.
	progress := func(what string, n int64) {
		t.Helper()
		target := ok.Load() + n
		deadline := time.Now().Add(20 * time.Second)
		for ok.Load() < target && failed.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no progress", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	progress("start", 20)

	d := startEmptyNode(t, info, "d")
	if err := m.Update(ctx, members(a, b, c, d)); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, m, a, b, c, d)
	progress("after d joined", 20)

	if err := m.Drain(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.Nodes[1].ID != "b" || st.Nodes[1].Experts != 0 {
		t.Fatalf("b still holds experts after the drain: %+v", st.Nodes)
	}
	progress("after b drained", 20)
	b.node.Stop()
	if err := m.Update(ctx, members(a, c, d)); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, m, a, c, d)
	progress("after b left", 20)

	c.proxy.Kill() // c dies: calls fail over to replicas until the change
	progress("after c died", 20)
	if err := m.Update(ctx, members(a, d)); err != nil {
		t.Fatal(err)
	}
	checkHeld(t, m, a, d)
	progress("after c was removed", 20)

	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	t.Logf("%d calls, none failed", ok.Load())
}

func TestManagerMoveAndDryRun(t *testing.T) {
	info := fakeInfo(gguf.TypeF32)
	rc := router.DefaultConfig()
	rc.Model = info
	m, err := router.NewManager(router.ManagerConfig{Router: rc, Plan: testPlanConfig(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	a, b := startEmptyNode(t, info, "a"), startEmptyNode(t, info, "b")
	if err := m.Update(ctx, members(a, b)); err != nil {
		t.Fatal(err)
	}
	p, mv, err := m.DryRun([]string{"a", "b", "new"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Shard("new") == nil || mv.ExpertsMoved == 0 || mv.ExpertsMoved > len(tMoE)*tExperts/3+2 {
		t.Fatalf("dry run with a third node moves %d experts", mv.ExpertsMoved)
	}
	// Move an expert a holds to b.
	holder, other := a, b
	if !hasExpert(t, a, 2, 5) {
		holder, other = b, a
	}
	if err := m.Move(ctx, 2, 5, other.id); err != nil {
		t.Fatal(err)
	}
	if hasExpert(t, holder, 2, 5) || !hasExpert(t, other, 2, 5) {
		t.Fatal("expert 2:5 did not move")
	}
	checkHeld(t, m, a, b)
	if err := m.Move(ctx, 2, 5, "nope"); err == nil {
		t.Fatal("moved to an unknown node")
	}
}

// TestManagerCapacity: nodes advertise capacities too small for R = 2;
// the Manager never loads a node past its capacity, reports the
// shortfall, and refuses a Move that would overfill a node, naming it.
func TestManagerCapacity(t *testing.T) {
	info := fakeInfo(gguf.TypeF32)
	rc := router.DefaultConfig()
	rc.Model = info
	pc := testPlanConfig(2)
	m, err := router.NewManager(router.ManagerConfig{Router: rc, Plan: pc})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	a, b := startEmptyNode(t, info, "a"), startEmptyNode(t, info, "b")
	model := int64(len(tMoE)*tExperts) * 1000 // testPlanConfig: 1000 bytes an expert
	capA, capB := model*3/4, model
	if err := m.Update(ctx, []router.Member{{ID: "a", Addr: a.proxy.Addr, Capacity: capA}, {ID: "b", Addr: b.proxy.Addr, Capacity: capB}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range m.Status().Nodes {
		if n.Bytes > n.Capacity {
			t.Fatalf("node %s holds %d bytes over its capacity %d", n.ID, n.Bytes, n.Capacity)
		}
	}
	p, _, err := m.DryRun(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Shortfall(); !errors.Is(err, router.ErrCapacity) || p.MissingBytes != 2*model-capA-capB {
		t.Fatalf("shortfall %v, %d bytes missing; want %d", err, p.MissingBytes, 2*model-capA-capB)
	}
	// a is full: moving one more expert there fails.
	var l, e int
	for _, ml := range tMoE {
		for x := range tExperts {
			if !hasExpert(t, a, ml, x) {
				l, e = ml, x
			}
		}
	}
	err = m.Move(ctx, l, e, "a")
	if !errors.Is(err, router.ErrCapacity) || !strings.Contains(err.Error(), "node a") {
		t.Fatalf("move %d:%d to the full node a: %v", l, e, err)
	}
	t.Logf("refused: %v", err)
}

func hasExpert(t *testing.T, n *liveNode, l, e int) bool {
	return n.node.Server.Service().Holdings().Has(l, e)
}

// TestManagerUndrain: a drained node gets experts again after an explicit
// Undrain (kubectl uncordon), and after it leaves membership and rejoins
// (a restart), without an Undrain; Update alone keeps the drain.
func TestManagerUndrain(t *testing.T) {
	info := fakeInfo(gguf.TypeF32)
	rc := router.DefaultConfig()
	rc.Model = info
	m, err := router.NewManager(router.ManagerConfig{Router: rc, Plan: testPlanConfig(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	a, b := startEmptyNode(t, info, "a"), startEmptyNode(t, info, "b")
	if err := m.Update(ctx, members(a, b)); err != nil {
		t.Fatal(err)
	}
	experts := func(id string) (int, bool) {
		for _, n := range m.Status().Nodes {
			if n.ID == id {
				return n.Experts, n.Drained
			}
		}
		t.Fatalf("node %s not in the status", id)
		return 0, false
	}
	drain := func() {
		t.Helper()
		if err := m.Drain(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if n, drained := experts("b"); n != 0 || !drained {
			t.Fatalf("after the drain b holds %d experts, drained %v", n, drained)
		}
	}
	drain()
	if err := m.Update(ctx, members(a, b)); err != nil { // a rescan keeps it drained
		t.Fatal(err)
	}
	if n, drained := experts("b"); n != 0 || !drained {
		t.Fatalf("a rescan undrained b: %d experts, drained %v", n, drained)
	}
	if err := m.Undrain(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if n, drained := experts("b"); n == 0 || drained {
		t.Fatalf("after Undrain b holds %d experts, drained %v", n, drained)
	}
	checkHeld(t, m, a, b)
	if err := m.Undrain(ctx, "b"); err != nil { // not drained: nothing to do
		t.Fatalf("undrain of a node not drained: %v", err)
	}
	if err := m.Undrain(ctx, "nope"); !errors.Is(err, router.ErrUnknownNode) {
		t.Fatalf("undrain of an unknown node: %v, want ErrUnknownNode", err)
	}

	drain()
	if err := m.Update(ctx, members(a)); err != nil { // b leaves (restarts)...
		t.Fatal(err)
	}
	if err := m.Update(ctx, members(a, b)); err != nil { // ... and rejoins
		t.Fatal(err)
	}
	if n, drained := experts("b"); n == 0 || drained {
		t.Fatalf("after leaving and rejoining b holds %d experts, drained %v", n, drained)
	}
	checkHeld(t, m, a, b)
}
