package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/server/scheduler"
	"github.com/inference-x/inference-x/tokenizer"
)

// testServer is a server over stories260K on a loopback httptest server.
type testServer struct {
	*httptest.Server
	srv   *Server
	sched *scheduler.Scheduler
	tok   *tokenizer.Tokenizer
	key   string
}

type serverOpts struct {
	sched     scheduler.Config
	apiKey    string
	noRun     bool // leave the scheduler loop stopped (requests queue)
	maxBody   int64
	modelFile string
	modelPath string // a model outside models/stories260K (modelFile is then ignored)
	template  *chat.Template
	coverage  experts.CoverageReporter
	waitReady time.Duration
	timeout   time.Duration // Config.Timeout (0: the default)
	log       io.Writer     // JSON logs at debug level
	// configure edits the config and deps before New (endpoints_test.go).
	configure func(m *model.Model, c *Config, d *Deps)
}

func newTestServer(t testing.TB, o serverOpts) *testServer {
	t.Helper()
	if o.modelFile == "" {
		o.modelFile = "stories260K.gguf"
	}
	path := o.modelPath
	if path == "" {
		path = filepath.Join(testenv.Shared(t, "models/stories260K"), o.modelFile)
	}
	m := experttest.OpenModel(t, path)
	tok, err := tokenizer.New(m.File)
	if err != nil {
		t.Fatal(err)
	}
	if o.sched.Slots == 0 {
		o.sched = scheduler.Config{Slots: 4, Ctx: 512, KV: model.KVF32, MaxBatch: 64, Queue: 16, Threads: 2}
	}
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := scheduler.New(m, o.sched, scheduler.WithObserver(metrics))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ModelID = "stories260K"
	cfg.APIKey = o.apiKey
	if o.maxBody > 0 {
		cfg.MaxBodyBytes = o.maxBody
	}
	cfg.WaitReady = o.waitReady
	if o.timeout > 0 {
		cfg.Timeout = o.timeout
	}
	var log *slog.Logger
	if o.log != nil {
		log = slog.New(slog.NewJSONHandler(o.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	deps := Deps{Scheduler: sched, Tokenizer: tok, Template: o.template, Metrics: metrics, Gatherer: reg,
		Coverage: o.coverage, Logger: log}
	if o.configure != nil {
		o.configure(m, &cfg, &deps)
	}
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if o.noRun {
		close(done)
	} else {
		go func() { sched.Run(ctx); close(done) }()
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
	})
	return &testServer{Server: hs, srv: srv, sched: sched, tok: tok, key: o.apiKey}
}

// post sends a JSON body and returns the response.
func (ts *testServer) post(t testing.TB, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if ts.key != "" {
		req.Header.Set("Authorization", "Bearer "+ts.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func decode[T any](t testing.TB, resp *http.Response) T {
	t.Helper()
	defer resp.Body.Close()
	var v T
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func expectError(t testing.TB, resp *http.Response, status int, code string) errorBody {
	t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	e := decode[errorBody](t, resp)
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("error body lacks message or type: %+v", e)
	}
	if code != "" && (e.Error.Code == nil || *e.Error.Code != code) {
		t.Errorf("error code %v, want %q (%s)", e.Error.Code, code, e.Error.Message)
	}
	return e
}

type completionBody struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text    string `json:"text"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

// llama.cpp's greedy continuation of "Lily and Tom went to the"
// (models/stories260K README, also checked by coordinator run's test).
const lilyGreedy = "park. They saw a big box with a big box. They wanted to play with it. They wanted to play with"

func TestCompletionGreedy(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	resp := ts.post(t, "/v1/completions", `{"model":"stories260K","prompt":"Lily and Tom went to the","max_tokens":32,"temperature":0}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c := decode[completionBody](t, resp)
	if c.Object != "text_completion" || c.Model != "stories260K" || !strings.HasPrefix(c.ID, "cmpl-") || len(c.Choices) != 1 {
		t.Fatalf("response %+v", c)
	}
	// The continuation keeps its leading space (" park"), as llama-server's
	// token pieces do.
	if got := c.Choices[0].Text; got != " "+lilyGreedy {
		t.Errorf("text %q\nwant %q", got, " "+lilyGreedy)
	}
	prompt := len(ts.tok.Encode("Lily and Tom went to the", true, true))
	if *c.Choices[0].FinishReason != "length" || c.Usage == nil ||
		*c.Usage != (usage{PromptTokens: prompt, CompletionTokens: 32, TotalTokens: prompt + 32}) {
		t.Errorf("finish %v usage %+v", *c.Choices[0].FinishReason, c.Usage)
	}
}

// sse reads an event stream: the data payloads before [DONE], and whether
// [DONE] ended it.
func sse(t testing.TB, resp *http.Response) ([]string, bool) {
	t.Helper()
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if data == "[DONE]" {
			if sc.Scan() && sc.Text() != "" || sc.Scan() {
				t.Errorf("data after [DONE]")
			}
			return events, true
		}
		events = append(events, data)
	}
	return events, false
}

func TestCompletionStreamMatches(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	body := `{"prompt":"Lily and Tom went to the","max_tokens":32,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`
	events, done := sse(t, ts.post(t, "/v1/completions", body))
	if !done {
		t.Fatal("stream did not end with [DONE]")
	}
	var text strings.Builder
	var finish string
	var u *usage
	for _, e := range events {
		var c completionBody
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatal(err)
		}
		if c.Object != "text_completion" {
			t.Errorf("object %q", c.Object)
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 {
				t.Errorf("usage chunk with choices: %s", e)
			}
			u = c.Usage
			continue
		}
		text.WriteString(c.Choices[0].Text)
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if got := strings.TrimSpace(text.String()); got != lilyGreedy {
		t.Errorf("streamed %q\nwant     %q", got, lilyGreedy)
	}
	if finish != "length" || u == nil || u.CompletionTokens != 32 {
		t.Errorf("finish %q usage %+v", finish, u)
	}
}

func TestChat(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	body := `{"model":"stories260K","messages":[{"role":"system","content":"Be nice."},{"role":"user","content":[{"type":"text","text":"Tell a story."}]}],"max_tokens":20,"temperature":0,"seed":7}`
	c := decode[completionBody](t, ts.post(t, "/v1/chat/completions", body))
	if c.Object != "chat.completion" || !strings.HasPrefix(c.ID, "chatcmpl-") || len(c.Choices) != 1 ||
		c.Choices[0].Message.Role != "assistant" || c.Choices[0].Message.Content == "" {
		t.Fatalf("response %+v", c)
	}
	// No chat template in stories260K: chatml, as llama-server falls back to.
	prompt := ts.tok.Encode("<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nTell a story.<|im_end|>\n<|im_start|>assistant\n", true, true)
	if c.Usage == nil || c.Usage.PromptTokens != len(prompt) || c.Usage.CompletionTokens+c.Usage.PromptTokens != c.Usage.TotalTokens {
		t.Errorf("usage %+v, want %d prompt tokens", c.Usage, len(prompt))
	}
	// The same request streamed yields the same text.
	events, done := sse(t, ts.post(t, "/v1/chat/completions", strings.Replace(body, `"seed":7`, `"seed":7,"stream":true`, 1)))
	if !done || len(events) < 3 {
		t.Fatalf("%d events, done %v", len(events), done)
	}
	var text strings.Builder
	for i, e := range events {
		var ch completionBody
		if err := json.Unmarshal([]byte(e), &ch); err != nil {
			t.Fatal(err)
		}
		if ch.Object != "chat.completion.chunk" || ch.ID != (completionBody{}).ID && ch.ID == "" {
			t.Errorf("chunk %s", e)
		}
		d := ch.Choices[0].Delta
		if i == 0 && d.Role != "assistant" {
			t.Errorf("first chunk lacks the role: %s", e)
		}
		if d.Content != nil {
			text.WriteString(*d.Content)
		}
		if last := i == len(events)-1; last != (ch.Choices[0].FinishReason != nil) {
			t.Errorf("finish_reason on chunk %d of %d: %s", i, len(events), e)
		}
	}
	if text.String() != c.Choices[0].Message.Content {
		t.Errorf("streamed %q, non-streamed %q", text.String(), c.Choices[0].Message.Content)
	}
}

func TestStopString(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	for _, stream := range []string{"false", "true"} {
		body := `{"prompt":"Lily and Tom went to the","max_tokens":32,"temperature":0,"stop":["big b","xyz"],"stream":` + stream + `}`
		var text, finish string
		if stream == "false" {
			c := decode[completionBody](t, ts.post(t, "/v1/completions", body))
			text, finish = c.Choices[0].Text, *c.Choices[0].FinishReason
		} else {
			events, _ := sse(t, ts.post(t, "/v1/completions", body))
			for _, e := range events {
				var c completionBody
				json.Unmarshal([]byte(e), &c)
				text += c.Choices[0].Text
				if c.Choices[0].FinishReason != nil {
					finish = *c.Choices[0].FinishReason
				}
			}
		}
		if strings.TrimSpace(text) != "park. They saw a" || finish != "stop" {
			t.Errorf("stream %s: text %q finish %q", stream, text, finish)
		}
	}
}

func TestStopper(t *testing.T) {
	st := stopper{stops: []string{"</s>", "END"}}
	var out strings.Builder
	for _, piece := range []string{"ab", "c<", "/", "x E", "N", "D tail"} {
		text, hit := st.feed(piece)
		out.WriteString(text)
		if hit {
			break
		}
	}
	if out.String() != "abc</x " || !st.hit {
		t.Errorf("got %q hit %v", out.String(), st.hit)
	}
}

func TestErrors(t *testing.T) {
	ts := newTestServer(t, serverOpts{maxBody: 2048})
	cases := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown model", "/v1/chat/completions", `{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found"},
		{"bad json", "/v1/chat/completions", `{"messages":`, 400, ""},
		{"no messages", "/v1/chat/completions", `{"messages":[]}`, 400, ""},
		{"bad role", "/v1/chat/completions", `{"messages":[{"role":"robot","content":"x"}]}`, 400, ""},
		{"bad temperature", "/v1/completions", `{"prompt":"x","temperature":5}`, 400, ""},
		{"bad stop", "/v1/completions", `{"prompt":"x","stop":3}`, 400, ""},
		{"n", "/v1/completions", `{"prompt":"x","n":99}`, 400, ""},
		{"bad token", "/v1/completions", `{"prompt":[1,100000]}`, 400, ""},
		{"too large", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 4096) + `"}`, 413, "request_too_large"},
		{"too long", "/v1/completions", `{"prompt":"` + strings.Repeat("a b ", 400) + `"}`, 400, "context_length_exceeded"},
		{"unknown path", "/v1/rerank", `{}`, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectError(t, ts.post(t, c.path, c.body), c.status, c.code)
		})
	}
	resp, err := http.Get(ts.URL + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	expectError(t, resp, 405, "method_not_allowed")
	resp, _ = http.Get(ts.URL + "/v1/models/other")
	expectError(t, resp, 404, "model_not_found")
}

func TestAuthModelsHealthMetrics(t *testing.T) {
	ts := newTestServer(t, serverOpts{apiKey: "s3cret"})
	get := func(path, key string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := get("/health", ""); resp.StatusCode != 200 {
		t.Errorf("/health without a key: %d", resp.StatusCode)
	}
	for _, p := range []string{"/v1/models", "/metrics"} {
		expectError(t, get(p, ""), 401, "invalid_api_key")
		expectError(t, get(p, "wrong"), 401, "invalid_api_key")
	}
	models := decode[struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object string
		} `json:"data"`
	}](t, get("/v1/models", "s3cret"))
	if models.Object != "list" || len(models.Data) != 1 || models.Data[0].ID != "stories260K" || models.Data[0].Object != "model" {
		t.Errorf("models %+v", models)
	}
	if resp := get("/v1/models/stories260K", "s3cret"); resp.StatusCode != 200 {
		t.Errorf("/v1/models/stories260K: %d", resp.StatusCode)
	}
	c := decode[completionBody](t, ts.post(t, "/v1/completions", `{"prompt":"Once","max_tokens":4}`))
	if c.Usage == nil || c.Usage.CompletionTokens == 0 {
		t.Fatalf("completion %+v", c)
	}
	resp := get("/metrics", "s3cret")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"ix_server_requests_total", "ix_server_time_to_first_token_seconds", "ix_server_generated_tokens_total",
		"ix_server_queue_depth", "ix_server_generation_tokens_per_second", "ix_scheduler_step_duration_seconds",
		`ix_server_requests_total{code="401",endpoint="models"}`} {
		if !strings.Contains(string(b), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	ts.srv.SetDraining(true)
	if resp := get("/health", ""); resp.StatusCode != 503 {
		t.Errorf("/health while draining: %d", resp.StatusCode)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a timing assumption
	}
}

// TestAdmissionBurst sends bursts of slots+queue and slots+queue+1
// concurrent requests to a scheduler whose loop is stopped (so nothing
// ends): the first burst is accepted whole, the second gets exactly one
// 429 in OpenAI's shape with Retry-After.
func TestAdmissionBurst(t *testing.T) {
	const slots, queue = 2, 1
	for _, burst := range []int{slots + queue, slots + queue + 1} {
		ts := newTestServer(t, serverOpts{noRun: true, sched: scheduler.Config{Slots: slots, Ctx: 128, MaxBatch: 8, Queue: queue}})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel) // before the server closes
		answers := make(chan *http.Response, burst)
		var wg sync.WaitGroup
		for range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/completions", strings.NewReader(`{"prompt":"x"}`))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					answers <- resp
				}
			}()
		}
		waitFor(t, "the burst to be admitted", func() bool { return ts.sched.InFlight() == slots+queue })
		if burst > slots+queue {
			resp := <-answers
			if got := resp.Header.Get("Retry-After"); got != "1" {
				t.Errorf("429 Retry-After %q", got)
			}
			expectError(t, resp, 429, "rate_limit_exceeded")
		}
		cancel()
		wg.Wait()
		close(answers)
		for resp := range answers {
			t.Errorf("burst %d: another answer %d", burst, resp.StatusCode)
			resp.Body.Close()
		}
		if n := ts.sched.InFlight(); n != slots+queue {
			t.Errorf("burst %d: %d in flight, want %d", burst, n, slots+queue)
		}
	}
}

// TestDisconnectCancels drops a streaming client after a few chunks: its
// sequence leaves the scheduler and a queued request gets the only slot.
func TestDisconnectCancels(t *testing.T) {
	ts := newTestServer(t, serverOpts{sched: scheduler.Config{Slots: 1, Ctx: 512, MaxBatch: 16, Queue: 4, Threads: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/completions",
		strings.NewReader(`{"prompt":"Once","max_tokens":500,"stream":true,"temperature":1,"stop":["never-happens-zz"]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	for n := 0; n < 3 && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "data: ") {
			n++
		}
	}
	if ts.sched.Active() != 1 {
		t.Fatalf("active sequences %d, want 1", ts.sched.Active())
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "the sequence to be cancelled", func() bool { return ts.sched.Active() == 0 })
	c := decode[completionBody](t, ts.post(t, "/v1/completions", `{"prompt":"Once","max_tokens":3}`))
	if c.Usage == nil || c.Usage.CompletionTokens != 3 {
		t.Errorf("next request: %+v", c)
	}
}

// TestChatTemplate serves with Llama 3's real template: the prompt is the
// template's rendering without its leading bos_token (the tokenizer adds
// BOS), so the request's prompt tokens are exactly those of that text.
func TestChatTemplate(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.Shared(t, "testdata/chat-templates"), "llama3.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Compile(string(src))
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, serverOpts{template: tmpl})
	c := decode[completionBody](t, ts.post(t, "/v1/chat/completions",
		`{"messages":[{"role":"system","content":"Be nice. "},{"role":"user","content":"Hi"}],"max_tokens":2}`))
	want := ts.tok.Encode("<|start_header_id|>system<|end_header_id|>\n\nBe nice.<|eot_id|>"+
		"<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", true, true)
	if c.Usage == nil || c.Usage.PromptTokens != len(want) {
		t.Fatalf("usage %+v, want %d prompt tokens", c.Usage, len(want))
	}
	// A template that raises is a 400 naming the template error.
	bad, err := chat.Compile(`{{ raise_exception("roles must alternate") }}`)
	if err != nil {
		t.Fatal(err)
	}
	ts = newTestServer(t, serverOpts{template: bad})
	e := expectError(t, ts.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`), 400, "template_error")
	if !strings.Contains(e.Error.Message, "roles must alternate") {
		t.Errorf("message %q", e.Error.Message)
	}
}
