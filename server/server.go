// Package server is the OpenAI-compatible HTTP API: /v1/chat/completions
// and /v1/completions (streaming over SSE or not), /v1/models, /health and
// /metrics. It turns requests into token ids (chat template, tokenizer),
// submits them to a scheduler.Scheduler, which batches all concurrent
// requests into one forward step, and streams the decoded text back,
// handling stop strings, usage counts, bearer-token auth, request size
// limits and errors in OpenAI's JSON shape.
//
// It does not load models, listen on sockets or run the scheduler loop:
// the serve command does that (cmd/coordinator/serve.go).
package server

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/server/scheduler"
	"github.com/inference-x/inference-x/tokenizer"
)

// Config configures the API.
type Config struct {
	// ModelID is the id clients name in "model" (the file's base name
	// without .gguf, or --alias).
	ModelID string
	// APIKey, when set, is the bearer token every endpoint but /health
	// requires.
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
}

// DefaultConfig returns the defaults: 4 MiB bodies, 16 stop strings,
// llama-server's sampling defaults.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes: 4 << 20,
		MaxStop:      16,
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
	// Gatherer serves /metrics (nil: no /metrics endpoint).
	Gatherer prometheus.Gatherer
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
	gather  prometheus.Gatherer
	log     *slog.Logger
	now     func() time.Time
	created int64

	bos, eos string
	draining atomic.Bool
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
		gather: d.Gatherer, log: d.Logger, now: d.Now}
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

// SetDraining makes /health answer 503 (the first step of shutdown, so
// load balancers stop sending traffic) or 200 again.
func (s *Server) SetDraining(v bool) { s.draining.Store(v) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", s.endpoint("health", http.MethodGet, s.health))
	mux.Handle("/v1/models", s.endpoint("models", http.MethodGet, s.authed(s.models)))
	mux.Handle("/v1/models/{id}", s.endpoint("models", http.MethodGet, s.authed(s.modelByID)))
	mux.Handle("/v1/chat/completions", s.endpoint("chat_completions", http.MethodPost, s.authed(s.chatCompletions)))
	mux.Handle("/v1/completions", s.endpoint("completions", http.MethodPost, s.authed(s.completions)))
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
	return mux
}

// handlerFunc is an endpoint that returns its error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// statusWriter records the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// endpoint wraps h with the method check, body limit, error writing,
// panic recovery and request metrics.
func (s *Server) endpoint(name, method string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		sw := &statusWriter{ResponseWriter: w}
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
			s.metrics.requests.WithLabelValues(name, fmt.Sprint(code)).Inc()
			s.metrics.duration.WithLabelValues(name).Observe(s.now().Sub(start).Seconds())
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
				s.log.Warn("request failed after the response started", "endpoint", name, "err", err)
				return
			}
			ae := toAPIError(err)
			if ae.Status >= 500 {
				s.log.Error("request failed", "endpoint", name, "err", err)
			}
			writeError(sw, ae)
		}
	})
}

// authed requires the bearer token when one is configured.
func (s *Server) authed(h handlerFunc) handlerFunc {
	if s.cfg.APIKey == "" {
		return h
	}
	want := []byte(s.cfg.APIKey)
	return func(w http.ResponseWriter, r *http.Request) error {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="inference-x"`)
			return newError(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"invalid or missing API key: send Authorization: Bearer KEY")
		}
		return h(w, r)
	}
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, err := w.Write([]byte(`{"status":"shutting down"}` + "\n"))
		return err
	}
	_, err := w.Write([]byte(`{"status":"ok"}` + "\n"))
	return err
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

// checkModel accepts the served id (and an empty one, as llama-server
// does); anything else is a 404 in OpenAI's words.
func (s *Server) checkModel(id string) error {
	if id == "" || id == s.cfg.ModelID {
		return nil
	}
	e := newError(http.StatusNotFound, "invalid_request_error", "model_not_found",
		"The model `%s` does not exist; this server serves `%s`.", id, s.cfg.ModelID)
	p := "model"
	e.Param = &p
	return e
}
