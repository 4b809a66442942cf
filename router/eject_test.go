package router_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/router"
)

// waitFor polls cond for up to 20 s (a bound against hanging, not a speed
// assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A hung node (its proxy holds every byte, as SIGSTOP) costs one call
// timeout when it is ejected, then only health probes until it answers:
// over many steps and several probe backoffs, the node gets exactly one
// live call, and after it resumes a probe readmits it and it gets calls
// again.
func TestHungNodeEjectedAndProbed(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	obs := newCallLog()
	cfg := router.DefaultConfig()
	cfg.Model, cfg.Observer = info, obs
	cfg.CallTimeout, cfg.EjectBase, cfg.EjectMax = 300*time.Millisecond, 20*time.Millisecond, 80*time.Millisecond
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	b := experttest.Batch(5, 12, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 12*tEmbd)
	step := func(what string) {
		t.Helper()
		clear(out)
		if err := r.Forward(context.Background(), 2, b, out); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		sameBits(t, what, out, want(t, 2, b))
	}
	step("all up")
	if obs.get(obs.calls, "a") == 0 {
		t.Fatal("node a got no call with every node up")
	}
	c.proxies[0].Stall()
	// Step on for at least 1.5 s: with probes every 20-80 ms after each
	// 300 ms probe timeout, several backoffs expire meanwhile.
	steps := 0
	for start := time.Now(); time.Since(start) < 1500*time.Millisecond || steps < 20; steps++ {
		step("node a hung")
	}
	if e, j := obs.get(obs.errs, "a"), obs.get(obs.ejections, "a"); e != 1 || j != 1 {
		t.Errorf("over %d steps with node a hung: %d failed calls and %d ejections, want 1 and 1 (probes, not live traffic)", steps, e, j)
	}
	if n := obs.get(obs.readmitted, "a"); n != 0 {
		t.Errorf("hung node readmitted %d times", n)
	}
	if cov := r.Coverage(); !cov.Covered() {
		t.Errorf("replicas cover node a, yet coverage %+v", cov)
	}
	c.proxies[0].Resume()
	waitFor(t, "node a readmitted by a health probe", func() bool { return obs.get(obs.readmitted, "a") == 1 })
	before := obs.get(obs.calls, "a")
	for range 3 {
		step("node a resumed")
	}
	if got := obs.get(obs.calls, "a"); got <= before {
		t.Errorf("node a readmitted but got no call (%d before, %d after)", before, got)
	}
	if e := obs.get(obs.errs, "a"); e != 1 {
		t.Errorf("%d failed calls to node a after it resumed, want the 1 from before", e)
	}
}

// With one of 3 nodes down and replication 2, New starts on the other two
// and dials the third in the background: once it is up, its Status is
// learnt and it gets calls.
func TestStartWithNodeDown(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	c.proxies[0].Kill()
	obs := newCallLog()
	cfg := router.DefaultConfig()
	cfg.Model, cfg.Observer = info, obs
	cfg.CallTimeout, cfg.EjectBase, cfg.EjectMax = 2*time.Second, 20*time.Millisecond, 100*time.Millisecond
	cfg.StatusTimeout = time.Minute // New does not wait for it: b and c cover every expert
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if p := r.Pending(); !slices.Equal(p, []string{"a"}) {
		t.Fatalf("pending %v, want [a]", p)
	}
	if cov := r.Coverage(); !cov.Covered() {
		t.Fatalf("b and c cover every expert, coverage %+v", cov)
	}
	b := experttest.Batch(9, 12, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 12*tEmbd)
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "without node a", out, want(t, 1, b))
	if n := obs.get(obs.calls, "a"); n != 0 {
		t.Fatalf("%d calls to the node that is down", n)
	}
	experttest.StartProxyAt(t, c.specs[0].Addr, c.nodes[0].Addr)
	waitFor(t, "node a's Status", func() bool { return len(r.Pending()) == 0 })
	for range 3 {
		clear(out)
		if err := r.Forward(context.Background(), 1, b, out); err != nil {
			t.Fatal(err)
		}
		sameBits(t, "with node a back", out, want(t, 1, b))
	}
	if n := obs.get(obs.calls, "a"); n == 0 {
		t.Error("node a answered its Status but gets no calls")
	}
}

// With two of 3 nodes down, New still returns (after StatusTimeout) and
// Coverage names what no reachable node holds; the caller decides
// (run fails, serve starts not ready).
func TestStartUncovered(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	c.proxies[0].Kill()
	c.proxies[1].Kill() // the second third is on a and b only
	cfg := router.DefaultConfig()
	cfg.Model, cfg.StatusTimeout = info, 300*time.Millisecond
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if p := r.Pending(); !slices.Equal(p, []string{"a", "b"}) {
		t.Errorf("pending %v, want [a b]", p)
	}
	if cov := r.Coverage(); cov.Uncovered != len(tMoE)*tExperts/3 || cov.Layer != tMoE[0] || cov.Expert != tExperts/3 {
		t.Errorf("coverage %+v, want %d uncovered from layer %d expert %d", cov, len(tMoE)*tExperts/3, tMoE[0], tExperts/3)
	}
}

// A node that refuses a call for what it carries (InvalidArgument) is
// healthy: the work fails over, but the node is not ejected.
func TestRefusedCallNotEjected(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	var refuse atomic.Bool
	refuse.Store(true)
	c.fakes[0].Hook = func(context.Context, int, *experts.Batch) error {
		if refuse.Load() {
			return fmt.Errorf("bad rows: %w", expertnode.ErrBadRequest)
		}
		return nil
	}
	obs := newCallLog()
	cfg := router.DefaultConfig()
	cfg.Model, cfg.Observer = info, obs
	r, err := router.New(context.Background(), cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	b := experttest.Batch(3, 12, tK, tEmbd, tExperts, gguf.TypeQ8_0)
	out := make([]float32, 12*tEmbd)
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "after a refusal", out, want(t, 1, b))
	if e, j := obs.get(obs.errs, "a"), obs.get(obs.ejections, "a"); e == 0 || j != 0 {
		t.Fatalf("%d refused calls, %d ejections; want some and none", e, j)
	}
	refuse.Store(false)
	before := obs.get(obs.calls, "a")
	if err := r.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	if obs.get(obs.calls, "a") == before {
		t.Error("the node that refused a call gets no more calls")
	}
}

// A hung node (stalled proxy) at New does not hold the start up once the
// others cover every expert (a second's grace, not StatusTimeout); after
// it resumes, it joins.
func TestStartWithNodeHung(t *testing.T) {
	info := fakeInfo(gguf.TypeQ8_0)
	c := startCluster(t, info)
	c.proxies[2].Stall()
	cfg := router.DefaultConfig()
	cfg.Model, cfg.StatusTimeout = info, time.Hour
	cfg.EjectBase, cfg.EjectMax = 20*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // fails the test instead of hanging it
	defer cancel()
	r, err := router.New(ctx, cfg, c.specs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if p := r.Pending(); !slices.Equal(p, []string{"c"}) {
		t.Fatalf("pending %v, want [c]", p)
	}
	if cov := r.Coverage(); !cov.Covered() {
		t.Fatalf("a and b cover every expert, coverage %+v", cov)
	}
	c.proxies[2].Resume()
	waitFor(t, "node c's Status after it resumed", func() bool { return len(r.Pending()) == 0 })
}
