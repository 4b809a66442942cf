// Package server is the OpenAI-compatible HTTP API: /v1/chat/completions
// and /v1/completions (streaming over SSE or not), /v1/models,
// /v1/embeddings, llama-server's /tokenize, /detokenize, /apply-template,
// /props and /slots (endpoints.go), /metrics and the probes /health,
// /readyz and /livez, with CORS (cors.go). It turns requests into token ids (chat template, tokenizer),
// submits them to a scheduler.Scheduler, which batches all concurrent
// requests into one forward step, and streams the decoded text back,
// handling stop strings, usage counts, bearer-token auth, request size
// limits and errors in OpenAI's JSON shape.
//
// It does not load models, listen on sockets or run the scheduler loop:
// the serve command does that (cmd/coordinator/serve.go).
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/server/connlimit"
	"github.com/inference-x/inference-x/server/scheduler"
	"github.com/inference-x/inference-x/tokenizer"
)

// Config configures the API.
type Config struct {
	// ModelID is the id clients name in "model" (the file's base name
	// without .gguf, or --alias).
	ModelID string
	// APIKey, when set, is the bearer token every endpoint but the probes
	// (/health, /readyz, /livez) requires.
	APIKey string
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64
	// MaxStop bounds the number of stop strings of a request.
	MaxStop int
	// Sampler holds the defaults for fields a request leaves out
	// (llama-server's: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05).
	Sampler model.SamplerConfig
	// MaxTokens is the default generation limit (<= 0: until the context
	// is full or an end-of-generation token).
	MaxTokens int
	// FixedSeed: requests without "seed" sample with Sampler.Seed
	// (llama-server --seed) instead of a random seed each.
	FixedSeed bool
	// WaitReady is how long a generation request arriving while some
	// expert has no live holder waits for coverage before a 503 (0: no
	// wait).
	WaitReady time.Duration
	// Timeout bounds how long a request body may take to arrive after
	// its headers (then 408 and the connection is closed) and how long
	// one write of a response may stall on a client that does not read
	// (then the connection is closed). It never bounds a whole stream.
	// 0: no limit.
	Timeout time.Duration
	// Aliases are more model ids accepted in "model" besides ModelID
	// (/v1/models lists ModelID only); AnyModel accepts every id.
	Aliases  []string
	AnyModel bool
	// CORSOrigins are the origins browsers may call from ("*": any);
	// empty: no CORS headers, preflights are 405 (cors.go).
	CORSOrigins []string
	// SSEKeepalive is the interval of ": ping" comments on a stream
	// waiting for its first token (queue and prefill); 0: none.
	SSEKeepalive time.Duration
	// ModelPath is the model file /props reports.
	ModelPath string
}

// DefaultConfig returns the defaults: 4 MiB bodies, 16 stop strings,
// a 60 s body and write timeout, llama-server's sampling defaults.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes: 4 << 20,
		Timeout:      60 * time.Second,
		MaxStop:      16,
		SSEKeepalive: 10 * time.Second,
		Sampler:      model.SamplerConfig{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Repeat: 1},
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.ModelID == "":
		return errors.New("server: empty model id")
	case c.MaxBodyBytes <= 0:
		return fmt.Errorf("server: body limit %d must be positive", c.MaxBodyBytes)
	case c.MaxStop < 0:
		return fmt.Errorf("server: stop string limit %d must be >= 0", c.MaxStop)
	case c.WaitReady < 0:
		return fmt.Errorf("server: wait for readiness %v must be >= 0", c.WaitReady)
	case c.Timeout < 0:
		return fmt.Errorf("server: timeout %v must be >= 0", c.Timeout)
	case c.SSEKeepalive < 0:
		return fmt.Errorf("server: SSE keep-alive interval %v must be >= 0", c.SSEKeepalive)
	}
	return c.Sampler.Validate()
}

// Deps are what the server works with.
type Deps struct {
	Scheduler *scheduler.Scheduler
	Tokenizer *tokenizer.Tokenizer
	// Template renders chat messages (nil: chatml).
	Template *chat.Template
	Metrics  *Metrics
	// Coverage says whether every routed expert can run (the router);
	// nil: always (single node, or local experts on).
	Coverage experts.CoverageReporter
	// FileCheck, when set, reports whether the model file is still the
	// one mapped ((*gguf.File).Check: nil, or an error wrapping
	// gguf.ErrFileChanged); readiness turns false while it fails.
	FileCheck func() error
	// Gatherer serves /metrics (nil: no /metrics endpoint).
	Gatherer prometheus.Gatherer
	// Embedder serves /v1/embeddings (nil: 501, start with --embeddings).
	Embedder *Embedder
	Logger   *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Server is the HTTP API. Its handler is safe for concurrent use.
type Server struct {
	cfg     Config
	sched   *scheduler.Scheduler
	tok     *tokenizer.Tokenizer
	tmpl    *chat.Template
	metrics *Metrics
	cov     experts.CoverageReporter
	check   func() error
	gather  prometheus.Gatherer
	embed   *Embedder
	log     *slog.Logger
	now     func() time.Time
	created int64

	bos, eos string
	draining atomic.Bool
	gvocab   grammarVocab // built on the first constrained request
	tfmt     toolFormat   // the template's tool-call format (tools.go)
	handler  http.Handler
}

// New builds the server.
func New(cfg Config, d Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Scheduler == nil || d.Tokenizer == nil {
		return nil, errors.New("server: a scheduler and a tokenizer are required")
	}
	s := &Server{cfg: cfg, sched: d.Scheduler, tok: d.Tokenizer, tmpl: d.Template, metrics: d.Metrics,
		cov: d.Coverage, check: d.FileCheck, gather: d.Gatherer, embed: d.Embedder, log: d.Logger, now: d.Now}
	if s.tmpl == nil {
		s.tmpl = chat.Builtin(chat.ChatML)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics, _ = NewMetrics(nil)
	}
	s.metrics.Watch(s.sched.Stats)
	s.created = s.now().Unix()
	if id := s.tok.BOS(); id >= 0 {
		s.bos = s.tok.TokenText(id)
	}
	if id := s.tok.EOS(); id >= 0 {
		s.eos = s.tok.TokenText(id)
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// SetDraining makes /health and /readyz answer 503 (the first step of
// shutdown, so load balancers stop sending traffic) or 200 again.
func (s *Server) SetDraining(v bool) { s.draining.Store(v) }

// probes are the endpoints whose request log is at debug level.
var probes = map[string]bool{"health": true, "readyz": true, "livez": true, "metrics": true}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", s.endpoint("health", http.MethodGet, s.readyz))
	mux.Handle("/readyz", s.endpoint("readyz", http.MethodGet, s.readyz))
	mux.Handle("/livez", s.endpoint("livez", http.MethodGet, s.livez))
	mux.Handle("/v1/models", s.endpoint("models", http.MethodGet, s.authed(s.models)))
	mux.Handle("/v1/models/{id}", s.endpoint("models", http.MethodGet, s.authed(s.modelByID)))
	mux.Handle("/v1/chat/completions", s.endpoint("chat_completions", http.MethodPost, s.authed(s.chatCompletions)))
	mux.Handle("/v1/completions", s.endpoint("completions", http.MethodPost, s.authed(s.completions)))
	mux.Handle("/v1/embeddings", s.endpoint("embeddings", http.MethodPost, s.authed(s.embeddings)))
	mux.Handle("/tokenize", s.endpoint("tokenize", http.MethodPost, s.authed(s.tokenize)))
	mux.Handle("/detokenize", s.endpoint("detokenize", http.MethodPost, s.authed(s.detokenize)))
	mux.Handle("/apply-template", s.endpoint("apply_template", http.MethodPost, s.authed(s.applyTemplate)))
	mux.Handle("/props", s.endpoint("props", http.MethodGet, s.authed(s.props)))
	mux.Handle("/slots", s.endpoint("slots", http.MethodGet, s.authed(s.slots)))
	if s.gather != nil {
		prom := promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{})
		mux.Handle("/metrics", s.endpoint("metrics", http.MethodGet, s.authed(func(w http.ResponseWriter, r *http.Request) error {
			prom.ServeHTTP(w, r)
			return nil
		})))
	}
	mux.Handle("/", s.endpoint("other", "", func(w http.ResponseWriter, r *http.Request) error {
		return newError(http.StatusNotFound, "invalid_request_error", "not_found", "no endpoint %s %s", r.Method, r.URL.Path)
	}))
	return s.cors(mux)
}

// handlerFunc is an endpoint that returns its error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// statusWriter records the status code for metrics and, with a
// timeout, gives each write that long to reach the client.
type statusWriter struct {
	http.ResponseWriter
	code    int
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.extend()
	return w.ResponseWriter.Write(b)
}

// extend moves the connection's write deadline to now + timeout: a
// stream may last any time, but no write may stall longer than that.
func (w *statusWriter) extend() {
	if w.timeout > 0 {
		w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) // ErrNotSupported (a recorder): no deadline
	}
}

// trustBody marks the connection trusted (connlimit.Trust) when an
// authenticated request's body has arrived whole.
type trustBody struct {
	io.ReadCloser
	ctx context.Context
}

func (b *trustBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		connlimit.Trust(b.ctx)
	}
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestInfo is what a handler tells the request log.
type requestInfo struct {
	promptTokens, outputTokens int
	ttft                       time.Duration
}

type infoKey struct{}

// infoOf returns r's requestInfo (a throwaway one outside endpoint).
func infoOf(r *http.Request) *requestInfo {
	if i, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

// requestID returns the client's X-Request-Id when it is a sane token
// (printable ASCII, at most 128 bytes), else a new random id.
func requestID(r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	ok := id != "" && len(id) <= 128
	for i := 0; ok && i < len(id); i++ {
		ok = id[i] > ' ' && id[i] < 0x7f
	}
	if ok {
		return id
	}
	return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
}

// endpoint wraps h with the method check, body limit, error writing,
// panic recovery, request metrics, the request id (X-Request-Id, taken
// from the request or made) and one log line per request (probes at
// debug level, the rest at info).
func (s *Server) endpoint(name, method string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		rc := http.NewResponseController(w)
		sw := &statusWriter{ResponseWriter: w, rc: rc, timeout: s.cfg.Timeout}
		sw.extend() // an early write (100 Continue) must not meet a stale deadline
		if s.cfg.Timeout > 0 && r.ContentLength != 0 {
			// The whole body must arrive within the timeout. net/http
			// clears the deadline when the body ends (its background
			// read, which notices clients going away, has none), so it
			// never bounds the response.
			rc.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
		}
		id := requestID(r)
		sw.Header().Set("X-Request-Id", id)
		info := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "endpoint", name, "panic", p)
				if sw.code == 0 {
					writeError(sw, fmt.Errorf("internal error: %v", p))
				}
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			d := s.now().Sub(start)
			s.metrics.requests.WithLabelValues(name, fmt.Sprint(code)).Inc()
			s.metrics.duration.WithLabelValues(name).Observe(d.Seconds())
			level := slog.LevelInfo
			if probes[name] {
				level = slog.LevelDebug
			}
			s.log.LogAttrs(r.Context(), level, "request", slog.String("request_id", id), slog.String("route", name),
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", code),
				slog.Int("prompt_tokens", info.promptTokens), slog.Int("output_tokens", info.outputTokens),
				slog.Float64("ttft_ms", ms(info.ttft)), slog.Float64("duration_ms", ms(d)))
		}()
		if method != "" && r.Method != method {
			sw.Header().Set("Allow", method)
			writeError(sw, newError(http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
				"%s %s: use %s", r.Method, r.URL.Path, method))
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, s.cfg.MaxBodyBytes)
		if err := h(sw, r); err != nil {
			if sw.code != 0 { // the response had started: nothing to send
				s.log.Warn("request failed after the response started", "endpoint", name, "request_id", id, "err", err)
				return
			}
			ae := toAPIError(err)
			if ae.Status == http.StatusRequestTimeout {
				sw.Header().Set("Connection", "close") // the rest of the body is not read
			}
			if ae.Status >= 500 {
				s.log.Error("request failed", "endpoint", name, "request_id", id, "err", err)
			}
			writeError(sw, ae)
		}
	})
}

// authed requires the bearer token when one is configured: a request
// without it is answered 401 and its connection closed. A request that
// passes (any request when no key is configured) marks its connection
// trusted once its body has arrived whole, so that the connection limit
// (package connlimit) closes untrusted connections first.
func (s *Server) authed(h handlerFunc) handlerFunc {
	want := []byte(s.cfg.APIKey)
	return func(w http.ResponseWriter, r *http.Request) error {
		if len(want) > 0 {
			scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="inference-x"`)
				w.Header().Set("Connection", "close") // its body is not read
				return newError(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
					"invalid or missing API key: send Authorization: Bearer KEY")
			}
		}
		if r.ContentLength == 0 { // no body: the request is whole
			connlimit.Trust(r.Context())
		} else {
			r.Body = &trustBody{ReadCloser: r.Body, ctx: r.Context()}
		}
		return h(w, r)
	}
}

// ms returns d in milliseconds (for logs).
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// probeStatus is the body of /health, /readyz and /livez.
type probeStatus struct {
	Status string `json:"status"` // "ok" or "unavailable"
	Reason string `json:"reason,omitempty"`
	// UncoveredExperts counts the (layer, expert) pairs no live node holds.
	UncoveredExperts int `json:"uncovered_experts,omitempty"`
}

// Readiness reports whether the server can serve generations: not
// draining, the scheduler loop running and every routed expert covered.
func (s *Server) Readiness() (ok bool, reason string, uncovered int) {
	switch {
	case s.draining.Load():
		return false, "shutting down", 0
	case !s.sched.Running():
		return false, "the scheduler is not running", 0
	}
	if s.check != nil {
		if err := s.check(); err != nil {
			return false, err.Error(), 0
		}
	}
	if s.cov != nil {
		if c := s.cov.Coverage(); !c.Covered() {
			return false, c.Reason(), c.Uncovered
		}
	}
	return true, "", 0
}

// readyz serves /readyz and /health: 200 {"status":"ok"} or 503 with why.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) error {
	ok, reason, n := s.Readiness()
	if ok {
		return writeProbe(w, probeStatus{Status: "ok"})
	}
	return writeProbe(w, probeStatus{Status: "unavailable", Reason: reason, UncoveredExperts: n})
}

// livez serves /livez: the process answers and the scheduler loop runs.
func (s *Server) livez(w http.ResponseWriter, _ *http.Request) error {
	if !s.sched.Running() {
		return writeProbe(w, probeStatus{Status: "unavailable", Reason: "the scheduler is not running"})
	}
	return writeProbe(w, probeStatus{Status: "ok"})
}

func writeProbe(w http.ResponseWriter, p probeStatus) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if p.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return json.NewEncoder(w).Encode(p)
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) modelObject() modelObject {
	return modelObject{ID: s.cfg.ModelID, Object: "model", Created: s.created, OwnedBy: "inference-x"}
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", []modelObject{s.modelObject()}})
}

func (s *Server) modelByID(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkModel(r.PathValue("id")); err != nil {
		return err
	}
	return writeJSON(w, s.modelObject())
}

// checkModel accepts the served id, its aliases (every id with
// AnyModel) and an empty one, as llama-server does; anything else is a
// 404 in OpenAI's words.
func (s *Server) checkModel(id string) error {
	if id == "" || id == s.cfg.ModelID || s.cfg.AnyModel || slices.Contains(s.cfg.Aliases, id) {
		return nil
	}
	e := newError(http.StatusNotFound, "invalid_request_error", "model_not_found",
		"The model `%s` does not exist; this server serves `%s`.", id, s.cfg.ModelID)
	p := "model"
	e.Param = &p
	return e
}
