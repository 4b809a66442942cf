package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inference-x/inference-x/internal/experttest"
)

// nodesFlag is --nodes for the cluster's proxies.
func (fc *failoverCluster) nodesFlag() string {
	var addrs []string
	for _, p := range fc.proxies {
		addrs = append(addrs, p.Addr)
	}
	return strings.Join(addrs, ",")
}

// restart brings node i back at its proxy's address.
func (fc *failoverCluster) restart(t *testing.T, i int) {
	t.Helper()
	fc.proxies[i] = experttest.StartProxyAt(t, fc.proxies[i].Addr, fc.nodes[i].Addr)
}

// poll calls cond until it is true, for up to 60 s (a bound against
// hanging, not a speed assertion).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func statusOf(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const shortCompletion = `{"prompt":"the mixture of experts","max_tokens":4,"temperature":0}`

func postCompletion(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(shortCompletion))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeStartsWithNodeDown: one of three --nodes down, every expert on
// two: serve starts ready and serves; once the node is up it is dialled
// in the background (its Status learnt) and gets calls.
func TestServeStartsWithNodeDown(t *testing.T) {
	fc := startFailoverCluster(t, 3, 2)
	fc.proxies[0].Kill()
	base, _, logs := startServeLogs(t, "-m", fc.model, "--http", "127.0.0.1:0", "--slots", "2", "--ctx", "128", "-t", "1",
		"--nodes", fc.nodesFlag(), "--local-experts=false", "--node-timeout", "2s", "--eject-base", "50ms", "--eject-max", "200ms")
	if !strings.Contains(logs.String(), "starting without them") || !strings.Contains(logs.String(), fc.proxies[0].Addr) {
		t.Errorf("the node not reached is not logged:\n%s", logs.String())
	}
	if code := statusOf(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d with replicas covering the node that is down", code)
	}
	if code := postCompletion(t, base); code != 200 {
		t.Fatalf("completion without node a: %d", code)
	}
	calls := `ix_router_expert_calls_total{node="` + fc.proxies[0].Addr + `"}`
	if strings.Contains(getBody(t, base+"/metrics"), calls) {
		t.Fatal("calls to the node that is down")
	}
	fc.restart(t, 0)
	poll(t, "node a dialled in the background and routed to", func() bool {
		if code := postCompletion(t, base); code != 200 {
			t.Fatalf("completion while node a comes back: %d", code)
		}
		return strings.Contains(getBody(t, base+"/metrics"), calls)
	})
	if !strings.Contains(logs.String(), "expert node reached; routing to it") {
		t.Errorf("node a's return is not logged:\n%s", logs.String())
	}
}

// TestServeStartsUncovered: two of three nodes down, local experts off,
// so some experts are on no reachable node: serve starts not ready
// (/readyz 503) rather than exiting, and is ready once the nodes are up.
func TestServeStartsUncovered(t *testing.T) {
	fc := startFailoverCluster(t, 3, 2)
	fc.proxies[0].Kill()
	fc.proxies[1].Kill()
	base, _ := startServe(t, "-m", fc.model, "--http", "127.0.0.1:0", "--slots", "2", "--ctx", "128", "-t", "1",
		"--nodes", fc.nodesFlag(), "--local-experts=false", "--node-timeout", "500ms", "--wait-ready", "0s")
	if code := statusOf(t, base+"/readyz"); code != 503 {
		t.Fatalf("/readyz %d with experts on no reachable node", code)
	}
	if code := postCompletion(t, base); code != 503 {
		t.Errorf("completion while not ready: %d, want 503", code)
	}
	fc.restart(t, 0)
	fc.restart(t, 1)
	poll(t, "/readyz 200 once the nodes are up", func() bool { return statusOf(t, base+"/readyz") == 200 })
	if code := postCompletion(t, base); code != 200 {
		t.Errorf("completion once ready: %d", code)
	}
}

// TestRunUncovered: run with nodes down and no local experts fails with
// an error naming an uncovered expert and the nodes not reached.
func TestRunUncovered(t *testing.T) {
	fc := startFailoverCluster(t, 3, 2)
	fc.proxies[0].Kill()
	fc.proxies[1].Kill()
	code, _, errs := run(t, "run", "-m", fc.model, "-p", "x", "-n", "2", "-t", "1",
		"--nodes", fc.nodesFlag(), "--local-experts=false", "--node-timeout", "500ms")
	if code == 0 || !strings.Contains(errs, "experts are on no reachable node") || !strings.Contains(errs, "expert") ||
		!strings.Contains(errs, fc.proxies[0].Addr) || !strings.Contains(errs, fc.proxies[1].Addr) {
		t.Errorf("exit %d, stderr:\n%s", code, errs)
	}
	// with one node down the others cover every expert: run works
	fc.restart(t, 1)
	if code, _, errs := run(t, "run", "-m", fc.model, "-p", "x", "-n", "2", "-t", "1",
		"--nodes", fc.nodesFlag(), "--local-experts=false", "--node-timeout", "500ms"); code != 0 {
		t.Errorf("run with node a down, replicas covering it: exit %d\n%s", code, errs)
	}
}
