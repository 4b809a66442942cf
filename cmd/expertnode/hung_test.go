package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inference-x/inference-x/internal/testenv"
)

// metric returns the value of the sample name{node="node"} in the
// Prometheus text of base's /metrics (0 when absent).
func metric(t *testing.T, base, name, node string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := name + `{node="` + node + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// complete posts a greedy completion and returns its text.
func complete(t *testing.T, base string, tokens int) string {
	t.Helper()
	body := fmt.Sprintf(`{"prompt":[688,12,400,33,71],"max_tokens":%d,"temperature":0}`, tokens)
	resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Choices) != 1 {
		t.Fatalf("completion: %d %s", resp.StatusCode, b)
	}
	return out.Choices[0].Text
}

// TestHungNodeProcess SIGSTOPs one of three expertnode processes
// (replication 2) under `coordinator serve --nodes`: the hung node costs
// one --node-timeout, is ejected and health-probed, and gets no more live
// calls however many probe backoffs expire (the router's counters); the
// text stays that of the undisturbed cluster. After SIGCONT a probe
// readmits it and it gets calls again.
func TestHungNodeProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	model := testenv.Shared(t, "testdata/models/deepseek2-384.Q8_0.gguf")
	bin := binaries(t)
	specs := []string{"0-255", "128-383", "0-127,256-383"}
	var nodes []int
	var addrs []string
	for _, s := range specs {
		cmd, addr, _ := startNode(t, bin, model, s)
		nodes, addrs = append(nodes, cmd.Process.Pid), append(addrs, addr)
	}
	_, logs := startProc(t, filepath.Join(bin, "coordinator"), "serve", "-m", model, "--http", "127.0.0.1:0", "-t", "1",
		"--slots", "1", "--ctx", "512", "--nodes", strings.Join(addrs, ","), "--local-experts=false",
		"--node-timeout", "1s", "--eject-base", "100ms", "--eject-max", "400ms")
	var base string
	for deadline := time.Now().Add(60 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := serveAddr.FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs.String())
		}
	}
	want := complete(t, base, 64)
	hung := addrs[1]
	if err := syscall.Kill(nodes[1], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			syscall.Kill(nodes[1], syscall.SIGCONT)
		}
	})
	// Several completions, over at least 2 s: the probe backoff (100 ms
	// doubling to 400 ms, after each 1 s probe timeout) expires a few
	// times meanwhile.
	start := time.Now()
	for i := 0; i < 3 || time.Since(start) < 2*time.Second; i++ {
		if got := complete(t, base, 64); got != want {
			t.Fatalf("completion %d with node %s hung: %q, want %q", i, hung, got, want)
		}
	}
	errs := metric(t, base, "ix_router_rpc_errors_total", hung)
	ejections := metric(t, base, "ix_router_ejections_total", hung)
	t.Logf("node %s hung for %v: %v failed calls, %v ejections", hung, time.Since(start).Round(time.Millisecond), errs, ejections)
	if ejections != 1 || errs != 1 {
		t.Fatalf("hung node: %v failed live calls and %v ejections, want 1 and 1 (health probes, not live traffic)\n%s", errs, ejections, logs.String())
	}
	if v := metric(t, base, "ix_router_node_ejected", hung); v != 1 {
		t.Errorf("ix_router_node_ejected{node=%q} = %v while hung", hung, v)
	}
	before := metric(t, base, "ix_router_expert_calls_total", hung)
	if err := syscall.Kill(nodes[1], syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	for deadline := time.Now().Add(60 * time.Second); metric(t, base, "ix_router_node_ejected", hung) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node %s not readmitted after SIGCONT:\n%s", hung, logs.String())
		}
	}
	if got := complete(t, base, 16); !strings.HasPrefix(want, got) {
		t.Errorf("after readmission: %q, want a prefix of %q", got, want)
	}
	if after := metric(t, base, "ix_router_expert_calls_total", hung); after <= before {
		t.Errorf("readmitted node %s got no calls (%v before, %v after)", hung, before, after)
	}
	if e := metric(t, base, "ix_router_rpc_errors_total", hung); e != 1 {
		t.Errorf("%v failed calls to node %s after it resumed, want the 1 from before", e, hung)
	}
}
