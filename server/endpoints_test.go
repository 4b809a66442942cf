package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
)

func (ts *testServer) get(t testing.TB, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts.key != "" {
		req.Header.Set("Authorization", "Bearer "+ts.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestTokenizeDetokenize(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	const text = "Lily and Tom went to the park."
	for _, special := range []bool{false, true} {
		body, _ := json.Marshal(map[string]any{"content": text, "add_special": special})
		got := decode[struct{ Tokens []int32 }](t, ts.post(t, "/tokenize", string(body)))
		want := ts.tok.Encode(text, special, true)
		if !slices.Equal(got.Tokens, want) {
			t.Fatalf("add_special %v: tokens %v, want %v", special, got.Tokens, want)
		}
		body, _ = json.Marshal(map[string]any{"tokens": got.Tokens})
		c := decode[struct{ Content string }](t, ts.post(t, "/detokenize", string(body)))
		var joined strings.Builder
		for _, id := range want {
			joined.WriteString(ts.tok.TokenToPiece(id, true))
		}
		if c.Content != joined.String() {
			t.Errorf("detokenized %q, want the pieces %q", c.Content, joined.String())
		}
		// The pieces keep SentencePiece's leading space, which the
		// tokenizer's Detokenize drops.
		if d := ts.tok.Decode(ts.tok.Encode(text, false, true)); d != text ||
			strings.TrimPrefix(c.Content, ts.tok.TokenToPiece(ts.tok.BOS(), true)) != " "+text {
			t.Errorf("detokenized %q, tokenizer %q, text %q", c.Content, d, text)
		}
	}
	p := decode[struct {
		Tokens []struct {
			ID    int32  `json:"id"`
			Piece string `json:"piece"`
		}
	}](t, ts.post(t, "/tokenize", `{"content":"`+text+`","with_pieces":true}`))
	want := ts.tok.Encode(text, false, true)
	if len(p.Tokens) != len(want) {
		t.Fatalf("%d pieces, want %d", len(p.Tokens), len(want))
	}
	for i, tp := range p.Tokens {
		if tp.ID != want[i] || tp.Piece != ts.tok.TokenToPiece(want[i], true) {
			t.Errorf("piece %d: %+v, want %d %q", i, tp, want[i], ts.tok.TokenToPiece(want[i], true))
		}
	}
	// A mixed content: strings and token ids.
	mixed := decode[struct{ Tokens []int32 }](t, ts.post(t, "/tokenize", `{"content":["Lily",322,"Tom"],"add_special":true}`))
	wantMixed := append(append(ts.tok.Encode("Lily", true, true), 322), ts.tok.Encode("Tom", false, true)...)
	if !slices.Equal(mixed.Tokens, wantMixed) {
		t.Errorf("mixed content: %v, want %v", mixed.Tokens, wantMixed)
	}
	expectError(t, ts.post(t, "/tokenize", `{"content":["a",-1]}`), 400, "")
	e := expectError(t, ts.post(t, "/detokenize", `{"tokens":[1,99999]}`), 400, "")
	if e.Error.Param == nil || *e.Error.Param != "tokens" || !strings.Contains(e.Error.Message, "99999") {
		t.Errorf("error %+v", e.Error)
	}
	expectError(t, ts.post(t, "/tokenize", `{"content":`), 400, "")
	expectError(t, ts.get(t, "/tokenize"), 405, "method_not_allowed")
}

// llama3Template returns the Llama 3 chat template's source, compiled.
func llama3Template(t testing.TB) (string, *chat.Template) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.Shared(t, "testdata/chat-templates"), "llama3.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Compile(string(src))
	if err != nil {
		t.Fatal(err)
	}
	return string(src), tmpl
}

func TestApplyTemplate(t *testing.T) {
	_, tmpl := llama3Template(t)
	ts := newTestServer(t, serverOpts{template: tmpl})
	msgs := `{"messages":[{"role":"system","content":"Be nice. "},{"role":"user","content":"Hi"}]`
	got := decode[struct{ Prompt string }](t, ts.post(t, "/apply-template", msgs+"}"))
	want := "<|start_header_id|>system<|end_header_id|>\n\nBe nice.<|eot_id|>" +
		"<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
	if got.Prompt != want {
		t.Fatalf("prompt %q\nwant   %q", got.Prompt, want)
	}
	// It is the prompt the chat endpoint generates from.
	c := decode[completionBody](t, ts.post(t, "/v1/chat/completions", msgs+`,"max_tokens":1}`))
	if n := len(ts.tok.Encode(got.Prompt, true, true)); c.Usage == nil || c.Usage.PromptTokens != n {
		t.Errorf("chat usage %+v, want %d prompt tokens", c.Usage, n)
	}
	expectError(t, ts.post(t, "/apply-template", `{"messages":[]}`), 400, "")
}

func TestPropsSlots(t *testing.T) {
	src, tmpl := llama3Template(t)
	ts := newTestServer(t, serverOpts{template: tmpl, apiKey: "k", configure: func(_ *model.Model, c *Config, _ *Deps) {
		c.ModelPath = "models/stories260K.gguf"
	}})
	type settings struct {
		ID           int  `json:"id"`
		NCtx         int  `json:"n_ctx"`
		IsProcessing bool `json:"is_processing"`
		Params       struct {
			Temperature float64 `json:"temperature"`
			TopK        int     `json:"top_k"`
			NPredict    int     `json:"n_predict"`
		} `json:"params"`
	}
	p := decode[struct {
		Default      settings `json:"default_generation_settings"`
		TotalSlots   int      `json:"total_slots"`
		ModelPath    string   `json:"model_path"`
		ChatTemplate string   `json:"chat_template"`
		BOSToken     string   `json:"bos_token"`
		BuildInfo    string   `json:"build_info"`
	}](t, ts.get(t, "/props"))
	if p.TotalSlots != 4 || p.Default.NCtx != 512 || p.ModelPath != "models/stories260K.gguf" ||
		p.ChatTemplate != src || p.BOSToken != "<s>" || p.BuildInfo == "" ||
		p.Default.Params.Temperature != 0.8 || p.Default.Params.TopK != 40 || p.Default.Params.NPredict != -1 {
		t.Errorf("props %+v", p)
	}
	slots := decode[[]settings](t, ts.get(t, "/slots"))
	if len(slots) != 4 {
		t.Fatalf("%d slots", len(slots))
	}
	for i, s := range slots {
		if s.ID != i || s.NCtx != 512 || s.IsProcessing {
			t.Errorf("slot %d: %+v", i, s)
		}
	}
	// The API key protects them like every endpoint but the probes.
	ts.key = ""
	expectError(t, ts.get(t, "/props"), 401, "invalid_api_key")
	expectError(t, ts.get(t, "/slots"), 401, "invalid_api_key")
}

type embeddingBody struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

func (b embeddingBody) vectors(t testing.TB) [][]float32 {
	t.Helper()
	out := make([][]float32, len(b.Data))
	for i, d := range b.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Errorf("data[%d]: object %q index %d", i, d.Object, d.Index)
		}
		var s string
		if json.Unmarshal(d.Embedding, &s) == nil {
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(raw)%4 != 0 {
				t.Fatalf("base64 embedding %q: %v", s, err)
			}
			for k := 0; k < len(raw); k += 4 {
				out[i] = append(out[i], math.Float32frombits(binary.LittleEndian.Uint32(raw[k:])))
			}
			continue
		}
		if err := json.Unmarshal(d.Embedding, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestEmbeddings(t *testing.T) {
	off := newTestServer(t, serverOpts{})
	e := expectError(t, off.post(t, "/v1/embeddings", `{"input":"x"}`), 501, "not_supported")
	if !strings.Contains(e.Error.Message, "--embeddings") {
		t.Errorf("message %q", e.Error.Message)
	}

	var m *model.Model
	ts := newTestServer(t, serverOpts{configure: func(mm *model.Model, _ *Config, d *Deps) {
		m = mm
		// A batch of 8 splits the longer inputs into several Forwards.
		emb, err := NewEmbedder(mm, 256, model.KVF32, model.Options{Threads: 2, MaxBatch: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(emb.Close)
		d.Embedder = emb
	}})
	texts := []string{"Lily and Tom went to the park to play with the big red ball.", "Once upon a time", "The cat sat."}
	post := func(body string) embeddingBody {
		t.Helper()
		resp := ts.post(t, "/v1/embeddings", body)
		if resp.StatusCode != 200 {
			expectError(t, resp, 200, "")
		}
		return decode[embeddingBody](t, resp)
	}
	batch, _ := json.Marshal(map[string]any{"input": texts, "model": "stories260K"})
	all := post(string(batch))
	if all.Object != "list" || all.Model != "stories260K" || len(all.Data) != len(texts) {
		t.Fatalf("response %+v", all)
	}
	vecs := all.vectors(t)
	total := 0
	for i, text := range texts {
		toks := ts.tok.Encode(text, true, true)
		total += len(toks)
		if len(vecs[i]) != m.Config.Embd {
			t.Fatalf("input %d: %d dimensions, want %d", i, len(vecs[i]), m.Config.Embd)
		}
		var n float64
		for _, v := range vecs[i] {
			n += float64(v) * float64(v)
		}
		if math.Abs(math.Sqrt(n)-1) > 1e-5 {
			t.Errorf("input %d: norm %v", i, math.Sqrt(n))
		}
		// One input alone, as text, as token ids and as base64, gives the
		// same vector, bit for bit.
		one, _ := json.Marshal(map[string]any{"input": text})
		ids, _ := json.Marshal(map[string]any{"input": toks, "encoding_format": "float"})
		b64, _ := json.Marshal(map[string]any{"input": [][]int32{toks}, "encoding_format": "base64"})
		for _, body := range []string{string(one), string(ids), string(b64)} {
			got := post(body)
			if got.Usage.PromptTokens != len(toks) {
				t.Errorf("usage %+v, want %d tokens", got.Usage, len(toks))
			}
			if v := got.vectors(t); len(v) != 1 || !slices.Equal(v[0], vecs[i]) {
				t.Errorf("input %d alone (%.40s...) differs from the batch", i, body)
			}
		}
		// Mean pooling of the final hidden state, computed directly.
		if d := maxDiff(vecs[i], directEmbedding(t, m, toks)); d > 1e-5 {
			t.Errorf("input %d: differs from the direct mean pooling by %g", i, d)
		}
	}
	if all.Usage.PromptTokens != total || all.Usage.TotalTokens != total {
		t.Errorf("usage %+v, want %d", all.Usage, total)
	}
	if slices.Equal(vecs[0], vecs[1]) {
		t.Error("different texts gave the same vector")
	}
	for _, bad := range []string{`{}`, `{"input":[]}`, `{"input":[[]]}`, `{"input":[99999]}`, `{"input":{"a":1}}`,
		`{"input":"x","encoding_format":"int8"}`} {
		expectError(t, ts.post(t, "/v1/embeddings", bad), 400, "")
	}
	expectError(t, ts.post(t, "/v1/embeddings", `{"input":"x","model":"gpt-4"}`), 404, "model_not_found")
	long, _ := json.Marshal(map[string]any{"input": strings.Repeat("the cat sat ", 200)})
	expectError(t, ts.post(t, "/v1/embeddings", string(long)), 400, "context_length_exceeded")
}

// directEmbedding pools the model's final hidden rows of toks in one
// Forward: the mean, L2-normalised.
func directEmbedding(t testing.TB, m *model.Model, toks []int32) []float32 {
	t.Helper()
	r := m.NewRunner(model.Options{Threads: 1, MaxBatch: len(toks)})
	defer r.Close()
	seq, err := m.NewSequence(len(toks), model.KVF32)
	if err != nil {
		t.Fatal(err)
	}
	var b model.Batch
	for i, tok := range toks {
		b.Add(seq, tok, i, true)
	}
	h, err := r.Hidden(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	e := m.Config.Embd
	mean := make([]float64, e)
	for i := range toks {
		for k := range e {
			mean[k] += float64(h[i*e+k]) / float64(len(toks))
		}
	}
	var n float64
	for _, v := range mean {
		n += v * v
	}
	out := make([]float32, e)
	for k, v := range mean {
		out[k] = float32(v / math.Sqrt(n))
	}
	return out
}

func maxDiff(a, b []float32) float64 {
	d := math.Inf(1)
	if len(a) == len(b) {
		d = 0
		for i := range a {
			d = max(d, math.Abs(float64(a[i]-b[i])))
		}
	}
	return d
}

func TestCORS(t *testing.T) {
	preflight := func(ts *testServer, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/v1/chat/completions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Off by default: a preflight is a 405, no CORS headers.
	off := newTestServer(t, serverOpts{})
	if resp := preflight(off, "http://app.example"); resp.StatusCode != 405 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS off: preflight %d %v", resp.StatusCode, resp.Header)
	}

	ts := newTestServer(t, serverOpts{apiKey: "k", configure: func(_ *model.Model, c *Config, _ *Deps) {
		c.CORSOrigins, _ = ParseOrigins("http://app.example, https://b.example/")
	}})
	for _, bad := range []string{"app.example", "ftp://x", "http://x/path", "http://"} {
		if _, err := ParseOrigins(bad); err == nil || !strings.Contains(err.Error(), "not an origin") {
			t.Errorf("ParseOrigins(%q): %v", bad, err)
		}
	}
	// A preflight needs no key.
	resp := preflight(ts, "https://b.example")
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://b.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		h.Get("Access-Control-Allow-Headers") != "authorization, content-type" {
		t.Errorf("preflight %d %v", resp.StatusCode, h)
	}
	if resp := preflight(ts, "http://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin allowed: %v", resp.Header)
	}
	// The actual request carries the allow header, and still needs the key.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/models", nil)
	req.Header.Set("Origin", "http://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Errorf("GET with Origin: %d %v", resp.StatusCode, resp.Header)
	}
	req.Header.Set("Authorization", "Bearer k")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" {
		t.Errorf("GET with key: %d %v", resp.StatusCode, resp.Header)
	}

	star := newTestServer(t, serverOpts{configure: func(_ *model.Model, c *Config, _ *Deps) { c.CORSOrigins = []string{"*"} }})
	if resp := preflight(star, "http://anything.example"); resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("* preflight %d %v", resp.StatusCode, resp.Header)
	}
}

// TestSSEKeepalive holds a streamed request in the queue (the scheduler
// loop is not running yet) and checks that ": ping" comments arrive, then
// that the generation streams normally once the loop runs.
func TestSSEKeepalive(t *testing.T) {
	ts := newTestServer(t, serverOpts{noRun: true, configure: func(_ *model.Model, c *Config, _ *Deps) {
		c.SSEKeepalive = 20 * time.Millisecond
	}})
	resp := ts.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"temperature":0,"stream":true}`)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d %v", resp.StatusCode, resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	pings := 0
	for pings < 3 && sc.Scan() {
		if sc.Text() == ": ping" {
			pings++
		}
	}
	if pings < 3 {
		t.Fatalf("saw %d pings before the stream ended: %v", pings, sc.Err())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.sched.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	var text strings.Builder
	finished := false
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			if data == "[DONE]" {
				finished = true
			}
			continue
		}
		var ch completionBody
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		if c := ch.Choices[0].Delta.Content; c != nil {
			text.WriteString(*c)
		}
	}
	if !finished || text.Len() == 0 {
		t.Errorf("after the pings: done %v, text %q", finished, text.String())
	}
}

func TestAliases(t *testing.T) {
	ts := newTestServer(t, serverOpts{configure: func(_ *model.Model, c *Config, _ *Deps) {
		c.Aliases = []string{"gpt-4o-mini", "local"}
	}})
	for _, id := range []string{"stories260K", "gpt-4o-mini", "local", ""} {
		resp := ts.post(t, "/v1/completions", `{"model":"`+id+`","prompt":"Hi","max_tokens":1}`)
		if c := decode[completionBody](t, resp); resp.StatusCode != 200 || c.Model != "stories260K" {
			t.Errorf("model %q: status %d, model %q", id, resp.StatusCode, c.Model)
		}
	}
	expectError(t, ts.post(t, "/v1/completions", `{"model":"other","prompt":"Hi","max_tokens":1}`), 404, "model_not_found")
	models := decode[struct{ Data []modelObject }](t, ts.get(t, "/v1/models"))
	if len(models.Data) != 1 || models.Data[0].ID != "stories260K" {
		t.Errorf("models %+v", models)
	}
	anyID := newTestServer(t, serverOpts{configure: func(_ *model.Model, c *Config, _ *Deps) { c.AnyModel = true }})
	if resp := anyID.post(t, "/v1/completions", `{"model":"whatever/7b","prompt":"Hi","max_tokens":1}`); resp.StatusCode != 200 {
		expectError(t, resp, 200, "")
	}
}

// TestEmbeddingsConcurrent runs embeddings beside generations: every
// request succeeds and every embedding is the one computed alone.
func TestEmbeddingsConcurrent(t *testing.T) {
	ts := newTestServer(t, serverOpts{configure: func(mm *model.Model, _ *Config, d *Deps) {
		emb, err := NewEmbedder(mm, 128, model.KVF16, model.Options{Threads: 1, MaxBatch: 16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(emb.Close)
		d.Embedder = emb
	}})
	const body = `{"input":["Once upon a time there was a cat.","The sun was hot."]}`
	want := decode[embeddingBody](t, ts.post(t, "/v1/embeddings", body)).vectors(t)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				resp := ts.post(t, "/v1/completions", `{"prompt":"Lily and Tom went to the","max_tokens":24}`)
				if resp.StatusCode != 200 {
					errs <- fmt.Sprintf("completion: status %d", resp.StatusCode)
				}
				resp.Body.Close()
				return
			}
			resp := ts.post(t, "/v1/embeddings", body)
			if resp.StatusCode != 200 {
				errs <- fmt.Sprintf("embeddings: status %d", resp.StatusCode)
				resp.Body.Close()
				return
			}
			got := decode[embeddingBody](t, resp).vectors(t)
			if len(got) != 2 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
				errs <- "embeddings differ under concurrency"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
