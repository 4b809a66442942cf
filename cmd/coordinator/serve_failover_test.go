package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/membership"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/synth"
)

// failoverCluster is a synthetic MoE model whose experts are served by
// in-process expert nodes behind proxies (Kill cuts a node off), with the
// placement file serve reads.
type failoverCluster struct {
	model, placement string
	nodes            []*experttest.Node
	proxies          []*experttest.Proxy
}

// startFailoverCluster cuts the 16 experts into nodes parts; node n holds
// parts n .. n+replication-1 (mod nodes).
func startFailoverCluster(t *testing.T, nodes, replication int) *failoverCluster {
	t.Helper()
	dir := t.TempDir()
	fc := &failoverCluster{model: filepath.Join(dir, "kimi.gguf"), placement: filepath.Join(dir, "placement.json")}
	f, info := synthMoE(t, fc.model)
	var pf router.PlacementFile
	for _, n := range experttest.StartModelNodes(t, f, info, nodes, replication) {
		fc.nodes, fc.proxies = append(fc.nodes, n.Node), append(fc.proxies, n.Proxy)
		pf.Nodes = append(pf.Nodes, router.PlacementNode{Name: n.Name, Addr: n.Proxy.Addr, Experts: n.Set.String()})
	}
	b, _ := json.Marshal(pf)
	if err := os.WriteFile(fc.placement, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return fc
}

// synthMoE writes a small Kimi-shaped model (16 experts) to path and
// opens it.
func synthMoE(t *testing.T, path string) (*gguf.File, router.ModelInfo) {
	t.Helper()
	c, err := synth.Preset("kimi-k2-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.ExpertFF, c.Vocab, c.Experts = 3, 128, 128, 2, 32, 512, 16
	c.QLoraRank, c.KVLoraRank, c.RopeDim, c.NopeDim, c.VHeadDim = 32, 32, 32, 32, 32
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 2}, path); err != nil {
		t.Fatal(err)
	}
	f := experttest.OpenModel(t, path).File
	info, err := router.InfoFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, info
}

// sseResult is what one streamed completion returned.
type sseResult struct {
	text, finish, errMsg string
	chunks               int
}

// streamCompletion posts a streamed completion and reads its events;
// after the first `after` text chunks it signals on progress (once).
func streamCompletion(t *testing.T, base, body string, after int, progress chan<- struct{}) (sseResult, error) {
	resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return sseResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return sseResult{}, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var r sseResult
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Error *struct{ Message string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return r, fmt.Errorf("event %q: %v", data, err)
		}
		if ev.Error != nil {
			r.errMsg = ev.Error.Message
			continue
		}
		for _, c := range ev.Choices {
			r.text += c.Text
			if c.FinishReason != nil {
				r.finish = *c.FinishReason
			}
		}
		if r.chunks++; r.chunks == after && progress != nil {
			progress <- struct{}{}
		}
	}
	return r, sc.Err()
}

// concurrentStreams runs n streamed completions at once and kills proxy
// kill once each has produced a few chunks.
func concurrentStreams(t *testing.T, base string, n int, body string, kill *experttest.Proxy) []sseResult {
	t.Helper()
	progress := make(chan struct{}, n)
	results := make([]sseResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = streamCompletion(t, base, body, 3, progress)
		}()
	}
	for range n {
		<-progress // every stream is mid-generation
	}
	kill.Kill()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	return results
}

const longCompletion = `{"prompt":"the mixture of experts","max_tokens":200,"temperature":0,"stream":true}`

// TestServeNodeKilledReplicated kills one of three expert nodes while
// four streams decode, every expert on two nodes: every stream completes
// with the text an undisturbed run gives, and the RPC metrics show the
// failed node's errors and failovers.
func TestServeNodeKilledReplicated(t *testing.T) {
	fc := startFailoverCluster(t, 3, 2)
	base, _ := startServe(t, "-m", fc.model, "--http", "127.0.0.1:0", "--slots", "4", "--ctx", "256", "-t", "1",
		"--placement", fc.placement, "--local-experts=false")
	want, err := streamCompletion(t, base, longCompletion, 0, nil)
	if err != nil || want.finish != "length" {
		t.Fatalf("undisturbed run: %+v %v", want, err)
	}
	for i, r := range concurrentStreams(t, base, 4, longCompletion, fc.proxies[0]) {
		if r.errMsg != "" || r.finish != "length" || r.text != want.text {
			t.Errorf("stream %d: finish %q, error %q, same text %v", i, r.finish, r.errMsg, r.text == want.text)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range []string{`ix_router_rpc_duration_seconds_count{node="b"}`, `ix_router_rpc_errors_total{node="a"}`,
		`ix_router_failovers_total{node="a"}`, `ix_router_expert_calls_total{node="c"}`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
}

// TestServeNodeKilledUnreplicated kills the only holder of half the
// experts while three streams decode: the streams end with an error
// event naming a layer and an expert, the coordinator stays up (/livez),
// answers 503 with Retry-After (streamed or not, before any byte) and
// /readyz says why, and once the node is back it serves again.
func TestServeNodeKilledUnreplicated(t *testing.T) {
	fc := startFailoverCluster(t, 2, 1)
	base, _ := startServe(t, "-m", fc.model, "--http", "127.0.0.1:0", "--slots", "4", "--ctx", "256", "-t", "1",
		"--placement", fc.placement, "--local-experts=false", "--wait-ready", "0")
	for i, r := range concurrentStreams(t, base, 3, longCompletion, fc.proxies[1]) {
		if !strings.Contains(r.errMsg, "no live holder") || !strings.Contains(r.errMsg, "layer ") || !strings.Contains(r.errMsg, "expert ") || r.finish != "" {
			t.Errorf("stream %d: finish %q, error %q", i, r.finish, r.errMsg)
		}
	}
	if resp, err := http.Get(base + "/livez"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/livez after the failure: %v %v", resp, err)
	}
	for _, body := range []string{`{"prompt":"x","max_tokens":4}`, `{"prompt":"x","max_tokens":4,"stream":true}`} {
		resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || e.Error.Code != "experts_unavailable" ||
			!strings.Contains(e.Error.Message, "expert ") {
			t.Errorf("%s: %d Retry-After %q, %+v", body, resp.StatusCode, resp.Header.Get("Retry-After"), e)
		}
	}
	// The node comes back at its address; the router retries it once its
	// down time is over (polled: the state, not a duration, is asserted).
	experttest.StartProxyAt(t, fc.proxies[1].Addr, fc.nodes[1].Addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x","max_tokens":4,"temperature":0}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if resp.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("after the node came back: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	if resp, err := http.Get(base + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz once served again: %v %v", resp, err)
	}
}

// TestServeWaitsForFirstNode starts a gossip coordinator without local
// experts before any expert node exists: /readyz says why it is not
// ready, and a completion sent then waits (--wait-ready) until a node
// joins by gossip, is given the experts, and is served.
func TestServeWaitsForFirstNode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kimi.gguf")
	f, info := synthMoE(t, path)
	base, _, logs := startServeLogs(t, "-m", path, "--http", "127.0.0.1:0", "--slots", "2", "--ctx", "128", "-t", "1",
		"--gossip", "127.0.0.1:0", "--local-experts=false", "--replicas", "1", "--wait-ready", "2m")
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Status, Reason   string
		UncoveredExperts int `json:"uncovered_experts"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 503 || st.UncoveredExperts != len(info.MoELayers)*info.Experts || !strings.Contains(st.Reason, "no live holder") {
		t.Fatalf("/readyz before any node: %d %+v", resp.StatusCode, st)
	}
	m := regexp.MustCompile(`msg="cluster mode: gossip" gossip=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no gossip address in the log:\n%s", logs.String())
	}
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x","max_tokens":4}`))
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(getBody(t, base+"/metrics"), "ix_server_requests_waiting_ready 1") {
		if time.Now().After(deadline) {
			t.Fatal("the completion is not waiting for readiness")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	local, err := experts.NewLocal(f, experts.LocalConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(local.Close)
	cfg := expertnode.DefaultConfig()
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor, cfg.Service.Holdings = "n1", info, local, router.Holdings{}
	node := experttest.StartNode(t, cfg)
	mc := membership.DefaultConfig()
	mc.Name, mc.Bind, mc.Seeds, mc.Profile = "n1", "127.0.0.1:0", []string{m[1]}, "local"
	mc.Meta = membership.Meta{Role: membership.RoleExpert, RPC: node.Addr}
	member, err := membership.Start(context.Background(), mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Shutdown() })
	if code := <-done; code != 200 {
		t.Fatalf("the waiting completion: %d\n%s", code, logs.String())
	}
	if resp, err := http.Get(base + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz once the node serves: %v %v", resp, err)
	}
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
