package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/adaptive"
	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/buildinfo"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/pagermetrics"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/server"
	"github.com/inference-x/inference-x/server/scheduler"
)

// ServeOptions are the inputs of `coordinator serve`.
type ServeOptions struct {
	Model           string
	HTTP            string
	Alias           string
	APIKey          string
	ChatTemplate    string // file overriding tokenizer.chat_template
	Slots           int
	Ctx             int
	Batch           int
	Queue           int
	Threads         int
	KVType          string
	MaxBody         int64
	MaxTokens       int
	Sampler         model.SamplerConfig
	ShutdownTimeout time.Duration
	Log             cli.LogFlags
	WaitReady       time.Duration
	Cluster         ServeClusterOptions // serve_cluster.go
	Adaptive        AdaptiveFlags
	Pager           PagerOptions // pager_flags.go; serve defaults to plain mmap
	Compat          ServeCompat  // llama_flags.go: --host, --port, --api-key-file, --seed

	kv model.KVType
	// ready, when set, is called with the bound address (tests).
	ready func(net.Addr)
}

func newServeCmd(s cli.Streams) *cobra.Command { return serveCmd(s, &ServeOptions{}) }

// serveCmd builds the command over o (tests preset o.ready).
func serveCmd(s cli.Streams, o *ServeOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve -m MODEL [--http ADDR] [flags]",
		Short: "Serve a model over an OpenAI-compatible HTTP API",
		Long: `serve loads a GGUF model and answers OpenAI-compatible requests:
POST /v1/chat/completions and /v1/completions (streaming or not),
GET /v1/models, /metrics (Prometheus) and the probes /health, /readyz
(ready: every routed expert has a live holder or local experts may run it)
and /livez.

Concurrent requests decode together: --slots sequences share each forward
step (continuous batching); a request is admitted whenever a slot is free,
up to --queue more wait for one, and beyond that requests get 429 with
Retry-After. A request needing an expert no live node holds fails alone
with 503 and Retry-After; one arriving while experts are uncovered (no
node joined yet) first waits up to --wait-ready. Chat requests use the model's chat template
(tokenizer.chat_template) or chatml when it has none.

--http binds loopback unless the address names a host: "8080" and ":8080"
mean 127.0.0.1:8080, "0.0.0.0:8080" every interface. With --api-key (or
IX_API_KEY) every endpoint but the probes requires "Authorization: Bearer KEY";
off loopback without one, serve logs a warning.
The model id is the file's base name without .gguf unless --alias names it.`,
		Example: `  coordinator serve -m stories260K.gguf
  coordinator serve -m model.gguf --http 0.0.0.0:8080 --api-key "$KEY" --slots 8 --ctx 8192
  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \
    -d '{"model":"model","messages":[{"role":"user","content":"Hello"}],"stream":true}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	d := scheduler.DefaultConfig()
	sd := server.DefaultConfig()
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "GGUF model file (first part of a split model)")
	f.StringVar(&o.HTTP, "http", "127.0.0.1:8080", "address to listen on (loopback unless a host is given)")
	f.StringVarP(&o.Alias, "alias", "a", "", "model id clients use (default: the file's base name without .gguf)")
	f.StringVar(&o.APIKey, "api-key", "", "require this bearer token (default: $IX_API_KEY; empty: no auth)")
	f.StringVar(&o.ChatTemplate, "chat-template-file", "", "Jinja chat template to use instead of the model's")
	f.IntVar(&o.Slots, "slots", d.Slots, "sequences decoded together")
	f.IntVarP(&o.Ctx, "ctx", "c", d.Ctx, "context size per slot in tokens (capped at the model's training context)")
	f.IntVarP(&o.Batch, "batch", "b", d.MaxBatch, "most tokens per forward step (decode tokens plus prompt chunks)")
	f.IntVar(&o.Queue, "queue", d.Queue, "requests waiting for a slot before 429")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads (0: one per CPU)")
	f.StringVar(&o.KVType, "kv-type", "f16", "KV cache type: f16 or f32")
	f.Var(bytesize.NewFlag(&o.MaxBody, sd.MaxBodyBytes), "max-body", "largest request body, e.g. 4Mi or 1M")
	f.IntVarP(&o.MaxTokens, "n-predict", "n", 0, "default max_tokens (0: until the context is full or end of generation)")
	f.Float32Var(&o.Sampler.Temperature, "temp", sd.Sampler.Temperature, "default temperature")
	f.IntVar(&o.Sampler.TopK, "top-k", sd.Sampler.TopK, "default top-k (0: off)")
	f.Float32Var(&o.Sampler.TopP, "top-p", sd.Sampler.TopP, "default top-p (1: off)")
	f.Float32Var(&o.Sampler.MinP, "min-p", sd.Sampler.MinP, "default min-p (0: off)")
	f.Float32Var(&o.Sampler.Repeat, "repeat-penalty", sd.Sampler.Repeat, "default repetition penalty (1: off)")
	f.IntVar(&o.Sampler.PenaltyLastN, "repeat-last-n", 64, "tokens the penalties look back over")
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long running requests may finish on shutdown")
	f.DurationVar(&o.WaitReady, "wait-ready", 30*time.Second, "how long a request arriving while experts are uncovered waits before a 503 (0: no wait)")
	o.Log.AddFlags(f)
	o.Cluster.AddFlags(f)
	o.Adaptive.AddFlags(f, true)
	o.Pager.AddFlags(f)
	// serve keeps plain mmap unless asked: a server's memory is usually
	// sized for its model, and auto would reserve every slot's KV cache.
	o.Pager.Mem = "plain"
	f.Lookup("expert-mem").DefValue = "plain"
	o.Compat.AddFlags(f)
	return cmd
}

// Complete fills defaults that depend on the environment.
func (o *ServeOptions) Complete() error {
	if err := o.completeCompat(); err != nil {
		return err
	}
	if o.APIKey == "" {
		o.APIKey = os.Getenv("IX_API_KEY")
	}
	if o.Alias == "" {
		o.Alias = strings.TrimSuffix(filepath.Base(o.Model), ".gguf")
	}
	o.HTTP = listenAddr(o.HTTP)
	return nil
}

// Validate checks the flags.
func (o *ServeOptions) Validate() error {
	if o.Model == "" {
		return cli.Usage(errors.New("no model: give one with -m MODEL.gguf"))
	}
	kv, err := model.ParseKVType(o.KVType)
	if err != nil {
		return cli.Usage(err)
	}
	o.kv = kv
	if err := o.Adaptive.Validate(o.Model); err != nil {
		return err
	}
	if o.ShutdownTimeout < 0 {
		return cli.Usage(fmt.Errorf("--shutdown-timeout %v must be >= 0", o.ShutdownTimeout))
	}
	if o.WaitReady < 0 {
		return cli.Usagef("--wait-ready %v must be >= 0", o.WaitReady)
	}
	if o.MaxTokens < 0 {
		return cli.Usage(fmt.Errorf("-n %d must be >= 0", o.MaxTokens))
	}
	for _, err := range []error{cli.Threads(o.Threads), cli.AtLeast("--slots", o.Slots, 1), cli.AtLeast("--queue", o.Queue, 0),
		cli.AtLeast("--ctx", o.Ctx, 1), cli.AtLeast("--batch", o.Batch, 1)} {
		if err != nil {
			return err
		}
	}
	if err := o.Pager.Validate(); err != nil {
		return cli.Usage(err)
	}
	if o.Cluster.Enabled() && o.Pager.budget >= 0 {
		return cli.Usage(fmt.Errorf("--expert-mem %s: the pager runs in single-node mode only; expert nodes take their own --expert-mem", o.Pager.Mem))
	}
	if err := o.Cluster.Validate(); err != nil {
		return err
	}
	return cli.Usage(o.Sampler.Validate())
}

// listenAddr makes a bare port or ":port" a loopback address.
func listenAddr(a string) string {
	if !strings.Contains(a, ":") {
		return "127.0.0.1:" + a
	}
	if strings.HasPrefix(a, ":") {
		return "127.0.0.1" + a
	}
	return a
}

// serveApp is what serve runs: the pieces are built by separate setup
// functions so the cluster (admin API, gossip) can add its own.
type serveApp struct {
	log      *slog.Logger
	lm       *loaded
	registry *prometheus.Registry
	metrics  *server.Metrics
	sched    *scheduler.Scheduler
	experts  experts.Backend   // nil: in-process
	adaptive *adaptive.Planner // --adaptive, or nil
	api      *server.Server
	http     *http.Server
}

// Run loads the model, listens and serves until ctx ends, then shuts
// down: /health turns 503, running requests get --shutdown-timeout to
// finish, the rest are cut, and the scheduler stops.
func (o *ServeOptions) Run(ctx context.Context, s cli.Streams) error {
	log, err := o.Log.Logger(s.Err)
	if err != nil {
		return err
	}
	app := &serveApp{log: log}
	if err := o.setupModel(app); err != nil {
		return err
	}
	defer app.lm.Close()
	if err := o.setupMetrics(app); err != nil {
		return err
	}
	o.Cluster.Static.Observer = app.metrics // per-node RPC metrics
	be, stopCluster, err := o.Cluster.StartCluster(ctx, app.lm.file, o.Threads, log)
	if err != nil {
		return err
	}
	defer stopCluster(o.ShutdownTimeout)
	app.experts = be
	if be == nil {
		store, closer, err := o.openStore(app, s.Err)
		if err != nil {
			return err
		}
		if store != nil {
			defer closer.Close()
			defer store.Close() // after the scheduler has stopped
			app.experts = store
			if err := app.registry.Register(pagermetrics.New(store.Stats)); err != nil {
				return err
			}
		}
	}
	if err := o.setupScheduler(ctx, app); err != nil {
		return err
	}
	if app.adaptive != nil {
		defer app.adaptive.Close() // after the scheduler has stopped
	}
	if err := o.setupAPI(app); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.HTTP)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "model", o.Alias, "slots", o.Slots, "ctx", app.sched.Config().Ctx,
		"auth", o.APIKey != "")
	warnExposed(log, o.HTTP, o.APIKey)
	if o.ready != nil {
		o.ready(ln.Addr())
	}
	return o.serve(ctx, app, ln)
}

func (o *ServeOptions) setupModel(app *serveApp) error {
	lm, err := loadModel(o.Model, true)
	if err != nil {
		return err
	}
	app.lm = lm
	c := lm.model.Config
	app.log.Info("model loaded", "file", o.Model, "arch", c.Arch, "layers", c.Layers, "embd", c.Embd,
		"vocab", c.Vocab, "experts", c.Experts, "took", lm.took, "file_id", lm.file.Identity()[0])
	return nil
}

func (o *ServeOptions) setupMetrics(app *serveApp) error {
	app.registry = prometheus.NewRegistry()
	app.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())
	m, err := server.NewMetrics(app.registry)
	if err != nil {
		return err
	}
	app.metrics = m
	o.Cluster.Registerer = app.registry // gossip metrics
	return nil
}

func (o *ServeOptions) setupScheduler(ctx context.Context, app *serveApp) error {
	cfg := scheduler.Config{Slots: o.Slots, Ctx: o.Ctx, KV: o.kv, MaxBatch: o.Batch, Queue: o.Queue, Threads: o.Threads}
	if train := app.lm.model.Config.CtxTrain; train > 0 && cfg.Ctx > train {
		cfg.Ctx = train
	}
	opts := []scheduler.Option{scheduler.WithLogger(app.log), scheduler.WithObserver(app.metrics)}
	if app.experts != nil {
		opts = append(opts, scheduler.WithExperts(app.experts))
	}
	planner, err := o.Adaptive.servePlanner(ctx, app.lm, o.Threads, app.log)
	if err != nil {
		return err
	}
	if planner != nil {
		app.adaptive = planner
		opts = append(opts, scheduler.WithPlanner(planner))
	}
	sched, err := scheduler.New(app.lm.model, cfg, opts...)
	if err != nil {
		if planner != nil {
			planner.Close()
		}
		return err
	}
	app.sched = sched
	return nil
}

func (o *ServeOptions) setupAPI(app *serveApp) error {
	tmpl, err := o.chatTemplate(app)
	if err != nil {
		return err
	}
	cfg := server.DefaultConfig()
	cfg.ModelID, cfg.APIKey, cfg.MaxBodyBytes, cfg.MaxTokens, cfg.Sampler = o.Alias, o.APIKey, o.MaxBody, o.MaxTokens, o.Sampler
	cfg.FixedSeed = o.Compat.Seed >= 0
	cfg.WaitReady = o.WaitReady
	cov, _ := app.experts.(experts.CoverageReporter) // the router: readiness follows expert coverage
	api, err := server.New(cfg, server.Deps{Scheduler: app.sched, Tokenizer: app.lm.tok, Template: tmpl,
		Metrics: app.metrics, Coverage: cov, FileCheck: app.lm.file.Check, Gatherer: app.registry, Logger: app.log})
	if err != nil {
		return err
	}
	app.api = api
	app.http = &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(app.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// chatTemplate compiles --chat-template-file or the model's template; a
// template the engine cannot parse falls back to the closest built-in
// format with a warning.
func (o *ServeOptions) chatTemplate(app *serveApp) (*chat.Template, error) {
	src, _ := app.lm.file.String("tokenizer.chat_template")
	from := "tokenizer.chat_template"
	if o.ChatTemplate != "" {
		b, err := readInputFile(o.ChatTemplate)
		if err != nil {
			return nil, err
		}
		src, from = string(b), o.ChatTemplate
	}
	t, err := chat.Compile(src)
	if err != nil {
		if o.ChatTemplate != "" {
			return nil, fmt.Errorf("%s: %w", o.ChatTemplate, err)
		}
		f := chat.Detect(src)
		app.log.Warn("chat template not usable, falling back to a built-in format", "err", err, "format", f)
		return chat.Builtin(f), nil
	}
	if src == "" {
		from = "none in the model: chatml"
	}
	app.log.Info("chat template", "from", from, "engine", t.Name())
	return t, nil
}

// serve runs the scheduler and the HTTP server until ctx ends or one of
// them fails, then shuts down in order.
func (o *ServeOptions) serve(ctx context.Context, app *serveApp, ln net.Listener) error {
	schedCtx, stopSched := context.WithCancel(context.Background())
	defer stopSched()
	schedDone := make(chan error, 1)
	go func() { schedDone <- app.sched.Run(schedCtx) }()
	httpDone := make(chan error, 1)
	go func() { httpDone <- app.http.Serve(ln) }()

	var failure error
	select {
	case <-ctx.Done():
	case err := <-httpDone:
		failure = fmt.Errorf("http server: %w", err)
	case err := <-schedDone:
		failure = fmt.Errorf("scheduler stopped: %w", err)
		schedDone <- err
	}
	app.log.Info("shutting down", "grace", o.ShutdownTimeout)
	app.api.SetDraining(true)
	shutCtx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := app.http.Shutdown(shutCtx); err != nil {
		app.log.Warn("requests still running at the deadline: closing them", "err", err)
		app.http.Close()
	}
	stopSched()
	if err := <-schedDone; err != nil && failure == nil {
		failure = err
	}
	app.log.Info("stopped")
	return failure
}

// openStore opens the expert pager's store when --expert-mem asks for one
// (nil otherwise). The auto budget reserves the KV cache of every slot.
func (o *ServeOptions) openStore(app *serveApp, errw io.Writer) (*experts.Store, io.Closer, error) {
	if o.Pager.budget < 0 {
		return nil, nil, nil
	}
	m := app.lm.model
	ctx := o.Ctx
	if train := m.Config.CtxTrain; train > 0 && ctx > train {
		ctx = train
	}
	const probe = 256 // positions of a throwaway sequence, to size the cache per position
	seq, err := m.NewSequence(probe, o.kv)
	if err != nil {
		return nil, nil, err
	}
	reserve := seq.CacheBytes() / probe * int64(ctx) * int64(o.Slots)
	store, closer, err := o.Pager.openStore(app.lm.file, o.Threads, reserve, errw)
	if err != nil {
		return nil, nil, err
	}
	if store != nil {
		app.log.Info("expert store", "pager", o.Pager.info)
	}
	return store, closer, nil
}
