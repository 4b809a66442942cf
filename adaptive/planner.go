package adaptive

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/model"
)

// Planner scores prompts and hands out each tier's model.Precision,
// building the lower copies a tier needs the first time the tier is
// used. It implements the scheduler's Planner (Plan) and is safe for
// concurrent use.
type Planner struct {
	cfg   Config
	m     *model.Model
	store *Store
	pages *pages
	log   *slog.Logger

	mu    sync.Mutex
	tiers [numTiers]*tierState
}

// tierState is a tier's built precision.
type tierState struct {
	prec   *model.Precision
	layers []LayerPlan
	use    use
	took   time.Duration
}

// LayerPlan is what serves one layer.
type LayerPlan struct {
	Layer int
	Band  Band
	Want  Choice
	// Copy is the lower copy (nil where the base serves: a base choice).
	// Copy.Variant is nil when no tensor of the layer got smaller.
	Copy *Copy
}

// Option configures a Planner.
type Option func(*Planner)

// WithLogger logs each decision and each copy made (default: discard).
func WithLogger(l *slog.Logger) Option { return func(p *Planner) { p.log = l } }

// WithResidency sets who releases routed experts' base pages (the expert
// pager); the default advises the model's file directly.
func WithResidency(r Residency) Option { return func(p *Planner) { p.pages.res = r } }

// New makes a Planner for m.
func New(m *model.Model, cfg Config, opts ...Option) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := NewStore(m, cfg.Cache, cfg.Threads)
	if err != nil {
		return nil, err
	}
	p := &Planner{cfg: cfg, m: m, store: st, pages: newPages(m.File, FileResidency{File: m.File}),
		log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Close releases the copies. Precisions handed out must no longer be in
// use.
func (p *Planner) Close() error { return p.store.Close() }

// Config returns the configuration.
func (p *Planner) Config() Config { return p.cfg }

// Store returns the copy store.
func (p *Planner) Store() *Store { return p.store }

// ReleasedBytes returns the base weight bytes currently released because
// lower copies serve their layers.
func (p *Planner) ReleasedBytes() int64 { n, _, _ := p.pages.stats(); return n }

// Decision is one prompt's plan.
type Decision struct {
	Score  Score
	Tier   Tier
	Forced bool // the tier was given, not scored
	Layers []LayerPlan
	// Err is set when the tier's copies could not be made; the base
	// weights then serve every layer.
	Err  error
	prec *model.Precision
	cfg  *Config
}

// ModelPrecision returns the weights to set on the request's sequence
// (nil: the base weights).
func (d *Decision) ModelPrecision() *model.Precision { return d.prec }

// String is the decision as run prints it and serve logs it.
func (d *Decision) String() string {
	s := fmt.Sprintf("score=%.3f tier=%s plan=%s", d.Score.Value, d.Tier, d.PlanString())
	if d.Forced {
		s += " (tier forced)"
	}
	if d.Err != nil {
		s += " error=" + d.Err.Error()
	}
	return s
}

// PlanString describes each band: its layers, the requested precision
// and, where it differs, what was really used, e.g.
// "early[0-1]=Q2_K(Q4_0+F16) middle[2]=Q4_K(Q5_0+F16) late[3-4]=base".
func (d *Decision) PlanString() string {
	var parts []string
	n := len(d.Layers)
	for b := Early; b < numBands; b++ {
		lo, hi := d.cfg.BandLayers(b, n)
		if lo >= hi {
			continue
		}
		name := fmt.Sprintf("%s[%d-%d]", b, lo, hi-1)
		if hi-lo == 1 {
			name = fmt.Sprintf("%s[%d]", b, lo)
		}
		want := d.Layers[lo].Want
		var used []gguf.Type
		kept := false
		for _, lp := range d.Layers[lo:hi] {
			if lp.Copy == nil {
				continue
			}
			for _, t := range lp.Copy.Tensors {
				switch {
				case !t.Replaced():
					kept = true
				case !containsType(used, t.To):
					used = append(used, t.To)
				}
			}
		}
		desc := want.String()
		if !want.Base && (kept || len(used) != 1 || used[0] != want.Type) {
			var u []string
			for _, t := range used {
				u = append(u, t.String())
			}
			if kept {
				u = append(u, "base")
			}
			desc += "(" + strings.Join(u, "+") + ")"
		}
		parts = append(parts, name+"="+desc)
	}
	return strings.Join(parts, " ")
}

func containsType(s []gguf.Type, t gguf.Type) bool {
	for _, x := range s {
		if x == t {
			return true
		}
	}
	return false
}

// Fallbacks lists, once per distinct reason, why tensors of the plan do
// not have the requested type.
func (d *Decision) Fallbacks() []string {
	var out []string
	for _, lp := range d.Layers {
		if lp.Copy == nil {
			continue
		}
		for _, t := range lp.Copy.Tensors {
			if t.Note == "" {
				continue
			}
			s := t.Note
			if !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// Decide scores prompt and returns its tier's plan (Config.Force's when
// Config.Forced), building the tier's copies on first use.
func (p *Planner) Decide(ctx context.Context, prompt []int32) (*Decision, error) {
	sc := ComputeScore(prompt, p.m.Config.Vocab, p.cfg.RefTokens, p.cfg.Ignore)
	if p.cfg.Forced {
		return p.decide(ctx, sc, p.cfg.Force, true)
	}
	return p.decide(ctx, sc, p.cfg.TierOf(sc.Value), false)
}

// DecideTier returns tier's plan whatever the prompt scores (benchmarks,
// --adaptive-tier); the prompt is still scored for the record.
func (p *Planner) DecideTier(ctx context.Context, prompt []int32, t Tier) (*Decision, error) {
	if t < 0 || t >= numTiers {
		return nil, fmt.Errorf("adaptive: no tier %d", t)
	}
	sc := ComputeScore(prompt, p.m.Config.Vocab, p.cfg.RefTokens, p.cfg.Ignore)
	return p.decide(ctx, sc, t, true)
}

func (p *Planner) decide(ctx context.Context, sc Score, t Tier, forced bool) (*Decision, error) {
	ts, err := p.tier(ctx, t)
	if err != nil {
		return nil, err
	}
	return &Decision{Score: sc, Tier: t, Forced: forced, Layers: ts.layers, prec: ts.prec, cfg: &p.cfg}, nil
}

// Prepare builds every tier's copies now rather than on first use.
func (p *Planner) Prepare(ctx context.Context) error {
	for _, t := range Tiers() {
		if _, err := p.tier(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// Plan implements the scheduler's Planner: it decides, logs the decision
// and returns it (a *Decision; its ModelPrecision is set on the
// request's sequence). When copies cannot be made it logs the error and
// the base weights serve.
func (p *Planner) Plan(prompt []int32) any {
	d, err := p.Decide(context.Background(), prompt)
	if err != nil {
		sc := ComputeScore(prompt, p.m.Config.Vocab, p.cfg.RefTokens, p.cfg.Ignore)
		d = &Decision{Score: sc, Tier: Complex, Err: err, cfg: &p.cfg}
		p.log.Error("adaptive precision failed; base weights serve", "err", err)
	}
	p.log.Info("adaptive plan", "score", round3(d.Score.Value), "tier", d.Tier.String(), "plan", d.PlanString(),
		"prompt_tokens", d.Score.Tokens, "entropy_bits", round3(d.Score.Entropy), "ttr", round3(d.Score.TTR))
	return d
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// tier returns tier t's precision, building it on first use.
func (p *Planner) tier(ctx context.Context, t Tier) (*tierState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ts := p.tiers[t]; ts != nil {
		return ts, nil
	}
	start := time.Now()
	n := p.m.Config.Layers
	ts := &tierState{layers: make([]LayerPlan, n)}
	var variants []*model.Variant
	replaced := map[string]bool{}
	for l := 0; l < n; l++ {
		b := p.cfg.BandOf(l, n)
		ch := p.cfg.Plans[t][b]
		lp := LayerPlan{Layer: l, Band: b, Want: ch}
		if !ch.Base {
			c, err := p.store.Get(ctx, l, ch.Type)
			if err != nil {
				return nil, err
			}
			lp.Copy = c
			if c.Variant != nil {
				variants = append(variants, c.Variant)
				for _, tc := range c.Tensors {
					if tc.Replaced() {
						replaced[tc.Name] = true
						ts.use.lower = append(ts.use.lower, tc.Name)
					}
				}
				for _, n := range c.Verbatim {
					replaced[n] = true
					ts.use.lower = append(ts.use.lower, n)
				}
				p.log.Debug("adaptive copy", "layer", l, "type", ch.Type.String(), "bytes", c.Bytes,
					"base_bytes", c.BaseBytes, "sidecar", c.Sidecar, "reused", c.Reused, "took", c.Took)
			}
		}
		ts.layers[l] = lp
	}
	for i := range p.m.File.Tensors {
		name := p.m.File.Tensors[i].Name
		if _, ok := layerOf(name); ok && !replaced[name] {
			ts.use.base = append(ts.use.base, name)
		}
	}
	prec, err := p.m.NewPrecision(t.String(), variants, func(attached bool) {
		d := -1
		if attached {
			d = 1
		}
		p.pages.attach(&ts.use, d)
	})
	if err != nil {
		return nil, err
	}
	ts.prec = prec
	ts.took = time.Since(start)
	p.tiers[t] = ts
	return ts, nil
}
