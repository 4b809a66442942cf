package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/adaptive"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/model"
)

// AdaptiveFlags are the --adaptive flags that run, perplexity and serve
// share (issue 12: the prompt's complexity picks each layer's precision).
type AdaptiveFlags struct {
	Enabled    bool
	Plans      string
	Thresholds string
	Cache      string
	Tier       string
	Prepare    bool

	cfg adaptive.Config
}

// AddFlags registers the flags; prepare adds --adaptive-prepare (serve).
func (a *AdaptiveFlags) AddFlags(f *pflag.FlagSet, prepare bool) {
	d := adaptive.DefaultConfig()
	f.BoolVar(&a.Enabled, "adaptive", false,
		"adaptive precision: score the prompt (entropy, type/token ratio) and run early/middle layers on requantized copies for simple prompts")
	f.StringVar(&a.Plans, "adaptive-plan", d.PlansString(),
		"precision per tier and band (early,middle,late): base or a ggml type; tiers not named keep the default")
	f.StringVar(&a.Thresholds, "adaptive-thresholds", fmt.Sprintf("%g,%g", d.SimpleBelow, d.ComplexAbove),
		"scores below the first are simple, above the second complex")
	f.StringVar(&a.Cache, "adaptive-cache", "ram",
		"where lower-precision copies live: ram, sidecar (a folder MODEL.adaptive beside the model) or a folder")
	f.StringVar(&a.Tier, "adaptive-tier", "", "use this tier's plan for every prompt (simple, moderate, complex) instead of the score's")
	if prepare {
		f.BoolVar(&a.Prepare, "adaptive-prepare", false, "make every tier's copies at start instead of on first use")
	}
}

// Validate parses the flags into a configuration for the model at path.
func (a *AdaptiveFlags) Validate(modelPath string) error {
	if !a.Enabled {
		if a.Tier != "" {
			return cli.Usage(fmt.Errorf("--adaptive-tier needs --adaptive"))
		}
		return nil
	}
	c := adaptive.DefaultConfig()
	if err := c.ParsePlans(a.Plans); err != nil {
		return cli.Usage(err)
	}
	if err := c.ParseThresholds(a.Thresholds); err != nil {
		return cli.Usage(err)
	}
	switch a.Cache {
	case "", "ram":
	case "sidecar":
		c.Cache = modelPath + ".adaptive"
	default:
		c.Cache = a.Cache
	}
	if a.Tier != "" {
		t, err := adaptive.ParseTier(a.Tier)
		if err != nil {
			return cli.Usage(err)
		}
		c.Forced, c.Force = true, t
	}
	a.cfg = c
	return cli.Usage(c.Validate())
}

// Planner makes the planner for a loaded model (nil when --adaptive is
// off). The tokenizer's BOS and EOS do not count in the score.
func (a *AdaptiveFlags) Planner(lm *loaded, threads int, log *slog.Logger) (*adaptive.Planner, error) {
	if !a.Enabled {
		return nil, nil
	}
	c := a.cfg
	c.Threads = threads
	if lm.tok != nil {
		c.Ignore = []int32{lm.tok.BOS(), lm.tok.EOS()}
	}
	opts := []adaptive.Option{}
	if log != nil {
		opts = append(opts, adaptive.WithLogger(log))
	}
	return adaptive.New(lm.model, c, opts...)
}

// printDecision writes a decision as run reports it on stderr.
func printDecision(w io.Writer, d *adaptive.Decision, p *adaptive.Planner) {
	fmt.Fprintf(w, "adaptive: %s\n", d)
	fmt.Fprintf(w, "adaptive: %s\n", d.Score)
	for _, fb := range d.Fallbacks() {
		fmt.Fprintf(w, "adaptive: fallback: %s\n", fb)
	}
	var bytes, base int64
	for _, lp := range d.Layers {
		if lp.Copy != nil && lp.Copy.Variant != nil {
			bytes += lp.Copy.Bytes
			base += lp.Copy.BaseBytes
		}
	}
	if base > 0 {
		fmt.Fprintf(w, "adaptive: lower copies %s replace %s of base weights (%s released)\n",
			mib(bytes), mib(base), mib(p.ReleasedBytes()))
	}
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + " MiB" }

// weightBytes returns the bytes of tensor data a decision's weights
// take: the model's tensors, with each replaced tensor counted at its
// copy's size.
func weightBytes(f *gguf.File, d *adaptive.Decision) int64 {
	var n int64
	for i := range f.Tensors {
		n += f.Tensors[i].Size
	}
	if d == nil {
		return n
	}
	for _, lp := range d.Layers {
		if lp.Copy != nil && lp.Copy.Variant != nil {
			n += lp.Copy.Bytes - lp.Copy.BaseBytes
		}
	}
	return n
}

// procMemory returns the process's resident set now and at its peak
// (VmRSS and VmHWM from /proc/self/status), 0 where not available.
func procMemory() (rss, peak int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) < 1 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}

// startRun decides the prompt's plan for run, prints it on w and sets it
// on seq. The returned function detaches it and frees the copies.
func (a *AdaptiveFlags) startRun(ctx context.Context, w io.Writer, lm *loaded, threads int, seq *model.Sequence, prompt []int32) (func(), error) {
	p, err := a.Planner(lm, threads, nil)
	if err != nil || p == nil {
		return func() {}, err
	}
	start := time.Now()
	d, err := p.Decide(ctx, prompt)
	if err != nil {
		p.Close()
		return nil, err
	}
	seq.SetPrecision(d.ModelPrecision())
	printDecision(w, d, p)
	fmt.Fprintf(w, "adaptive: plan ready in %.2f ms\n", float64(time.Since(start).Microseconds())/1000)
	return func() {
		seq.SetPrecision(nil)
		p.Close()
	}, nil
}

// AdaptiveSummary reports adaptive precision over a perplexity run.
type AdaptiveSummary struct {
	Chunks    map[string]int    `json:"chunks_per_tier"`
	MeanScore float64           `json:"mean_score"`
	Plans     map[string]string `json:"plans"`
	Forced    bool              `json:"tier_forced"`
	// WeightBytes is the tensor data serving each tier used, BaseBytes
	// the model's.
	WeightBytes map[string]int64 `json:"weight_bytes"`
	BaseBytes   int64            `json:"base_weight_bytes"`
	Fallbacks   []string         `json:"fallbacks,omitempty"`
}

// perplexityPlans decides every chunk's plan before the run (so copies
// are made, and errors reported, first) and returns the hook that hands
// each chunk its precision. It returns a nil planner when --adaptive is
// off.
func (a *AdaptiveFlags) perplexityPlans(ctx context.Context, lm *loaded, threads int, toks []int32, chunk int) (*adaptive.Planner, func([]int32) *model.Precision, *AdaptiveSummary, error) {
	p, err := a.Planner(lm, threads, nil)
	if err != nil || p == nil {
		return nil, nil, nil, err
	}
	prec, sum, err := a.perplexityPlansWith(ctx, p, lm, toks, chunk)
	if err != nil {
		p.Close()
		return nil, nil, nil, err
	}
	return p, prec, sum, nil
}

// perplexityPlansWith is perplexityPlans with a planner made by the caller.
func (a *AdaptiveFlags) perplexityPlansWith(ctx context.Context, p *adaptive.Planner, lm *loaded, toks []int32, chunk int) (func([]int32) *model.Precision, *AdaptiveSummary, error) {
	sum := &AdaptiveSummary{Chunks: map[string]int{}, Plans: map[string]string{}, WeightBytes: map[string]int64{},
		BaseBytes: weightBytes(lm.file, nil)}
	n := len(toks) / chunk
	precs := make([]*model.Precision, n)
	for c := 0; c < n; c++ {
		d, err := p.Decide(ctx, toks[c*chunk:(c+1)*chunk])
		if err != nil {
			return nil, nil, err
		}
		precs[c] = d.ModelPrecision()
		t := d.Tier.String()
		sum.Chunks[t]++
		sum.MeanScore += d.Score.Value / float64(n)
		sum.Plans[t] = d.PlanString()
		sum.WeightBytes[t] = weightBytes(lm.file, d)
		sum.Forced = d.Forced
		for _, fb := range d.Fallbacks() {
			if !slices.Contains(sum.Fallbacks, fb) {
				sum.Fallbacks = append(sum.Fallbacks, fb)
			}
		}
	}
	next := 0
	return func([]int32) *model.Precision {
		pr := precs[min(next, n-1)]
		next++
		return pr
	}, sum, nil
}

// print writes the summary as perplexity's text output.
func (s *AdaptiveSummary) print(w io.Writer) {
	for _, t := range adaptive.Tiers() {
		k := t.String()
		if s.Chunks[k] == 0 {
			continue
		}
		fmt.Fprintf(w, "adaptive: %s: %d chunks, %s, weights %s of %s\n", k, s.Chunks[k], s.Plans[k], mib(s.WeightBytes[k]), mib(s.BaseBytes))
	}
	fmt.Fprintf(w, "adaptive: mean score %.3f%s\n", s.MeanScore, map[bool]string{true: " (tier forced)"}[s.Forced])
	for _, fb := range s.Fallbacks {
		fmt.Fprintf(w, "adaptive: fallback: %s\n", fb)
	}
}

// servePlanner makes serve's planner (nil when --adaptive is off), making
// every tier's copies now with --adaptive-prepare.
func (a *AdaptiveFlags) servePlanner(ctx context.Context, lm *loaded, threads int, log *slog.Logger) (*adaptive.Planner, error) {
	p, err := a.Planner(lm, threads, log)
	if err != nil || p == nil {
		return nil, err
	}
	c := p.Config()
	log.Info("adaptive precision on", "plans", c.PlansString(), "thresholds", a.Thresholds, "cache", a.Cache,
		"forced_tier", a.Tier)
	if a.Prepare {
		start := time.Now()
		if err := p.Prepare(ctx); err != nil {
			p.Close()
			return nil, err
		}
		log.Info("adaptive copies made", "took", time.Since(start))
	}
	return p, nil
}
