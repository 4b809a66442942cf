package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/server/scheduler"
)

// syncBuffer is a log sink safe for the handler goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// metric returns the value of the sample named exactly name (with its
// labels) in a /metrics body, or -1.
func metric(body, name string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func (ts *testServer) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestMetricsAndRequestLog runs one completion: the latency histograms
// count it, the occupancy gauges and the generation speed go back to
// their idle values, the response carries the client's X-Request-Id and
// one JSON log line describes the request.
func TestMetricsAndRequestLog(t *testing.T) {
	var logs syncBuffer
	ts := newTestServer(t, serverOpts{log: &logs})
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"Once","max_tokens":6,"temperature":0}`))
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "req-42" {
		t.Errorf("X-Request-Id %q", got)
	}
	c := decode[completionBody](t, resp)
	if c.Usage == nil || c.Usage.CompletionTokens != 6 {
		t.Fatalf("completion %+v", c)
	}
	// The loop reports idle once it has no sequence left.
	waitFor(t, "the scheduler to go idle", func() bool {
		return metric(ts.metrics(t), "ix_server_generation_tokens_per_second") == 0
	})
	m := ts.metrics(t)
	for name, want := range map[string]float64{
		"ix_server_active_sequences":                    0,
		"ix_scheduler_slots_busy":                       0,
		"ix_scheduler_slots_idle":                       4,
		"ix_scheduler_kv_cache_used_tokens":             0,
		"ix_scheduler_kv_cache_capacity_tokens":         4 * 512,
		"ix_server_queue_depth":                         0,
		"ix_server_time_to_first_token_seconds_count":   1,
		"ix_server_time_per_output_token_seconds_count": 1,
		"ix_server_e2e_request_latency_seconds_count":   1,
		"ix_server_generated_tokens_total":              5, // the first token comes from the prompt step
	} {
		if got := metric(m, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(l), &v) == nil && v["msg"] == "request" && v["route"] == "completions" {
			if line != nil {
				t.Errorf("two request lines: %v and %v", line, v)
			}
			line = v
		}
	}
	if line == nil {
		t.Fatalf("no request log line:\n%s", logs.String())
	}
	if line["level"] != "INFO" || line["request_id"] != "req-42" || line["status"] != 200.0 || line["prompt_tokens"] != float64(len(ts.tok.Encode("Once", true, true))) ||
		line["output_tokens"] != 6.0 || line["ttft_ms"].(float64) <= 0 || line["duration_ms"].(float64) < line["ttft_ms"].(float64) {
		t.Errorf("request line %v", line)
	}
	// Without a client id the server makes one.
	resp, _ = http.Get(ts.URL + "/livez")
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); len(id) != 32 {
		t.Errorf("generated request id %q", id)
	}
}

// coverage is a CoverageReporter the test sets.
type coverage struct {
	uncovered atomic.Int32
	calls     atomic.Int32
}

func (c *coverage) Coverage() experts.Coverage {
	c.calls.Add(1)
	if n := int(c.uncovered.Load()); n > 0 {
		return experts.Coverage{Uncovered: n, Layer: 3, Expert: 17}
	}
	return experts.Coverage{}
}

// TestReadiness: /readyz and /health say 503 with why while experts are
// uncovered, generations get 503 + Retry-After in OpenAI's shape
// (streamed ones too: nothing was sent yet), and both recover once the
// experts are covered; /livez stays 200 throughout.
func TestReadiness(t *testing.T) {
	cov := &coverage{}
	cov.uncovered.Store(12)
	ts := newTestServer(t, serverOpts{coverage: cov, apiKey: "k"})
	for _, p := range []string{"/readyz", "/health"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		st := decode[probeStatus](t, resp)
		if resp.StatusCode != 503 || st.Status != "unavailable" || st.Reason != "layer 3 expert 17 has no live holder" || st.UncoveredExperts != 12 {
			t.Errorf("%s: %d %+v", p, resp.StatusCode, st)
		}
	}
	if resp, _ := http.Get(ts.URL + "/livez"); resp.StatusCode != 200 {
		t.Errorf("/livez: %d", resp.StatusCode)
	}
	for _, body := range []string{`{"prompt":"x","max_tokens":2}`, `{"prompt":"x","max_tokens":2,"stream":true}`} {
		resp := ts.post(t, "/v1/completions", body)
		if got := resp.Header.Get("Retry-After"); got != "5" {
			t.Errorf("Retry-After %q", got)
		}
		e := expectError(t, resp, 503, "experts_unavailable")
		if !strings.Contains(e.Error.Message, "layer 3 expert 17") {
			t.Errorf("message %q", e.Error.Message)
		}
	}
	cov.uncovered.Store(0)
	if resp, _ := http.Get(ts.URL + "/readyz"); resp.StatusCode != 200 {
		t.Errorf("/readyz when covered: %d", resp.StatusCode)
	}
	if c := decode[completionBody](t, ts.post(t, "/v1/completions", `{"prompt":"x","max_tokens":2}`)); c.Usage == nil {
		t.Errorf("completion when covered: %+v", c)
	}
}

// TestWaitReady: a request arriving while experts are uncovered waits
// (WaitReady) and is served once they are covered.
func TestWaitReady(t *testing.T) {
	cov := &coverage{}
	cov.uncovered.Store(1)
	ts := newTestServer(t, serverOpts{coverage: cov, waitReady: 60e9, sched: scheduler.Config{Slots: 1, Ctx: 128, MaxBatch: 8, Queue: 1}})
	done := make(chan *http.Response, 1)
	go func() { done <- ts.post(t, "/v1/completions", `{"prompt":"x","max_tokens":2}`) }()
	waitFor(t, "the request to poll coverage", func() bool { return cov.calls.Load() >= 2 })
	if ts.sched.InFlight() != 0 {
		t.Fatal("the request was submitted while experts were uncovered")
	}
	cov.uncovered.Store(0)
	if c := decode[completionBody](t, <-done); c.Usage == nil || c.Usage.CompletionTokens != 2 {
		t.Errorf("completion after waiting: %+v", c)
	}
}
