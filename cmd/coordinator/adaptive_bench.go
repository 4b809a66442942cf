package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/adaptive"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/ixlg"
	"github.com/inference-x/inference-x/model"
)

// AdaptiveBenchOptions are the inputs of `coordinator adaptive-bench`.
type AdaptiveBenchOptions struct {
	Model     string
	File      string
	Ctx       int
	Chunks    int
	Decode    int
	Reps      int
	Rounds    int
	Reference []string
	Threads   int
	InProcess bool
	Output    cli.Output
	Adaptive  AdaptiveFlags

	// child runs one row and prints it as JSON (the parent re-executes
	// itself per row so each row's memory figures are its own).
	child      string
	baseLogits string
	noQuality  bool // speed and memory only (rounds after the first)
}

// benchRows are the report's rows: the base weights, each tier forced,
// and each chunk's own scored tier.
var benchRows = []string{"base", "simple", "moderate", "complex", "scored"}

func newAdaptiveBenchCmd(s cli.Streams) *cobra.Command {
	o := &AdaptiveBenchOptions{}
	cmd := &cobra.Command{
		Use:   "adaptive-bench -m MODEL -f TEXT [--ctx 128] [--chunks N] [-n 64] [-o text|json]",
		Short: "Measure what adaptive precision costs in quality and gains in speed and memory, per tier",
		Long: `adaptive-bench evaluates TEXT the way perplexity does (chunks of --ctx
tokens, second halves scored) with the base weights, then with each tier's
plan forced on every chunk (simple, moderate, complex), then with each
chunk's own scored tier, then with every layer requantized to each
--reference type, and reports per row: the plan (requested type and the
type really used), the tensor bytes serving it, perplexity, KL divergence
and top-1 agreement against the base row, prompt tokens/s (a prefill of
the text's first --ctx tokens as one batch) and decode tokens/s (-n greedy
tokens after it), the best of -r runs times --rounds, and the resident
memory after those runs (VmRSS, and the peak VmHWM, which includes
requantizing the copies in that process; --adaptive-cache sidecar makes
them once). Each row runs in its own process (unless --in-process), so its
memory figures are its own. The complex row computes exactly what the base
row does: the gap between their speeds is the measurement noise. The text
output is a markdown table.`,
		Example: `  coordinator adaptive-bench -m stories260K.gguf -f war-and-peace-40k.txt --ctx 128
  coordinator adaptive-bench -m moe.Q8_0.gguf -f text.txt --ctx 256 --chunks 8 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Model == "" || o.File == "" {
				return cli.Usage(errors.New("give a model with -m and a text with -f"))
			}
			if o.Ctx < 4 || o.Chunks < 0 || o.Decode < 0 || o.Reps < 1 || o.Rounds < 1 {
				return cli.Usage(fmt.Errorf("--ctx %d, --chunks %d, -n %d, -r %d, --rounds %d: need ctx >= 4, chunks and n >= 0, r and rounds >= 1",
					o.Ctx, o.Chunks, o.Decode, o.Reps, o.Rounds))
			}
			if err := cli.Threads(o.Threads); err != nil {
				return err
			}
			for _, t := range o.Reference {
				if _, err := adaptive.ParseChoice(t); err != nil {
					return cli.Usage(fmt.Errorf("--reference: %w", err))
				}
			}
			o.Adaptive.Enabled = true
			if err := o.Adaptive.Validate(o.Model); err != nil {
				return err
			}
			if o.child != "" {
				row, err := o.runRow(cmd.Context(), o.child)
				if err != nil {
					return err
				}
				return cli.PrintJSON(s.Out, row)
			}
			return o.Run(cmd.Context(), s)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "GGUF model file")
	f.StringVarP(&o.File, "file", "f", "", "text to evaluate")
	f.IntVar(&o.Ctx, "ctx", 128, "chunk length in tokens")
	f.IntVar(&o.Chunks, "chunks", 0, "evaluate at most this many chunks (0: all)")
	f.IntVarP(&o.Decode, "n-decode", "n", 64, "greedy decode tokens per speed run (0: skip)")
	f.IntVarP(&o.Reps, "repetitions", "r", 3, "timed prefill+decode runs per row (the best counts)")
	f.IntVar(&o.Rounds, "rounds", 1, "run every row this many times, interleaved, and report the best speeds")
	f.StringSliceVar(&o.Reference, "reference", []string{"Q4_K"}, "also run every layer requantized to these types (uniform rows, for scale)")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads (0: one per CPU)")
	f.BoolVar(&o.InProcess, "in-process", false, "run every row in this process (memory figures then accumulate)")
	f.StringVar(&o.child, "child", "", "run one row and print it as JSON")
	f.StringVar(&o.baseLogits, "base-logits", "", "the base row's logits (IXLG) for the KL columns")
	f.BoolVar(&o.noQuality, "no-quality", false, "skip the quality pass")
	f.MarkHidden("no-quality")
	f.MarkHidden("child")
	f.MarkHidden("base-logits")
	cli.AddOutputFlag(cmd, &o.Output)
	o.Adaptive.AddFlags(f, false)
	for _, n := range []string{"adaptive", "adaptive-tier"} {
		f.MarkHidden(n)
	}
	return cmd
}

// BenchRow is one row of the report.
type BenchRow struct {
	Row         string         `json:"row"`
	Plan        string         `json:"plan"`
	Chunks      map[string]int `json:"chunks_per_tier,omitempty"`
	WeightBytes int64          `json:"weight_bytes"`
	BaseBytes   int64          `json:"base_weight_bytes"`
	PPL         float64        `json:"ppl"`
	PPLErr      float64        `json:"ppl_stderr"`
	KL          *KLReport      `json:"kl,omitempty"`
	PromptTokS  float64        `json:"prompt_tok_s"`
	DecodeTokS  float64        `json:"decode_tok_s"`
	DecodeTier  string         `json:"decode_tier"`
	RSS         int64          `json:"rss_bytes"`
	PeakRSS     int64          `json:"peak_rss_bytes"`
	Released    int64          `json:"released_bytes"`
	CopySeconds float64        `json:"copy_seconds"`
	Fallbacks   []string       `json:"fallbacks,omitempty"`
}

// AdaptiveBenchReport is the JSON output.
type AdaptiveBenchReport struct {
	Model   string     `json:"model"`
	Text    string     `json:"text"`
	Ctx     int        `json:"ctx"`
	Chunks  int        `json:"chunks"`
	Layers  int        `json:"layers"`
	Bands   string     `json:"bands"`
	Threads int        `json:"threads"`
	Decode  int        `json:"decode_tokens"`
	Plans   string     `json:"plans"`
	Thresh  string     `json:"thresholds"`
	Rows    []BenchRow `json:"rows"`
}

// Run measures every row and prints the report.
func (o *AdaptiveBenchOptions) Run(ctx context.Context, s cli.Streams) error {
	dir, err := os.MkdirTemp("", "ix-adaptive-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.baseLogits = filepath.Join(dir, "base.ixlg")
	rep := AdaptiveBenchReport{Model: o.Model, Text: o.File, Ctx: o.Ctx, Decode: o.Decode,
		Plans: o.Adaptive.cfg.PlansString(), Thresh: o.Adaptive.Thresholds}
	rows := append([]string(nil), benchRows...)
	for _, t := range o.Reference {
		rows = append(rows, "uniform-"+strings.ToUpper(t))
	}
	var pp, tg [][]float64
	for round := 0; round < o.Rounds; round++ {
		for i, row := range rows {
			fmt.Fprintf(s.Err, "adaptive-bench: round %d/%d: %s...\n", round+1, o.Rounds, row)
			var r *BenchRow
			o.noQuality = round > 0
			if o.InProcess {
				r, err = o.runRow(ctx, row)
			} else {
				r, err = o.childRow(ctx, s.Err, row)
			}
			if err != nil {
				return fmt.Errorf("row %s: %w", row, err)
			}
			if round == 0 {
				rep.Rows = append(rep.Rows, *r)
				pp, tg = append(pp, nil), append(tg, nil)
			}
			pp[i], tg[i] = append(pp[i], r.PromptTokS), append(tg[i], r.DecodeTokS)
		}
	}
	for i := range rep.Rows {
		rep.Rows[i].PromptTokS, rep.Rows[i].DecodeTokS = slices.Max(pp[i]), slices.Max(tg[i])
	}
	lm, err := loadLocalModel(o.Model, false)
	if err != nil {
		return err
	}
	c := o.Adaptive.cfg
	n := lm.model.Config.Layers
	var bands []string
	for b := adaptive.Early; b <= adaptive.Late; b++ {
		lo, hi := c.BandLayers(b, n)
		switch {
		case lo >= hi:
			bands = append(bands, fmt.Sprintf("%s none", b))
		case hi-lo == 1:
			bands = append(bands, fmt.Sprintf("%s %d", b, lo))
		default:
			bands = append(bands, fmt.Sprintf("%s %d-%d", b, lo, hi-1))
		}
	}
	rep.Layers, rep.Bands = n, strings.Join(bands, ", ")
	lm.Close()
	rep.Threads = o.Threads
	if rep.Threads == 0 {
		rep.Threads = runtime.NumCPU()
	}
	for _, v := range rep.Rows[len(benchRows)-1].Chunks { // the scored row
		rep.Chunks += v
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, rep)
	}
	rep.markdown(s.Out)
	return nil
}

// childRow runs one row in a new process of this binary.
func (o *AdaptiveBenchOptions) childRow(ctx context.Context, stderr io.Writer, row string) (*BenchRow, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"adaptive-bench", "--child", row, "-m", o.Model, "-f", o.File,
		"--ctx", fmt.Sprint(o.Ctx), "--chunks", fmt.Sprint(o.Chunks), "-n", fmt.Sprint(o.Decode),
		"-r", fmt.Sprint(o.Reps), "-t", fmt.Sprint(o.Threads), "--base-logits", o.baseLogits,
		"--adaptive-plan", o.Adaptive.Plans, "--adaptive-thresholds", o.Adaptive.Thresholds,
		"--adaptive-cache", o.Adaptive.Cache}
	if o.noQuality {
		args = append(args, "--no-quality")
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, stderr
	if err := cmd.Run(); err != nil {
		return nil, err
	}
	var r BenchRow
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("child output: %w", err)
	}
	return &r, nil
}

// runRow measures one row in this process.
func (o *AdaptiveBenchOptions) runRow(ctx context.Context, row string) (*BenchRow, error) {
	lm, err := loadLocalModel(o.Model, true)
	if err != nil {
		return nil, err
	}
	defer lm.Close()
	m := lm.model
	text, err := readInputFile(o.File)
	if err != nil {
		return nil, err
	}
	toks := lm.tok.Encode(string(text), true, false)
	if o.Chunks > 0 && len(toks) > o.Chunks*o.Ctx {
		toks = toks[:o.Chunks*o.Ctx]
	}
	if len(toks) < o.Ctx {
		return nil, fmt.Errorf("%s has %d tokens, too few for one chunk of %d", o.File, len(toks), o.Ctx)
	}
	res := &BenchRow{Row: row, BaseBytes: weightBytes(lm.file, nil), WeightBytes: weightBytes(lm.file, nil), Plan: "base weights"}

	// The row's planner: none for base; a tier forced; or scored.
	var planner *adaptive.Planner
	flags := o.Adaptive
	if row != "base" {
		flags.cfg.Forced = row != "scored"
		if t, ok := strings.CutPrefix(row, "uniform-"); ok {
			// A reference row: every band in t, forced.
			ch, err := adaptive.ParseChoice(t)
			if err != nil {
				return nil, err
			}
			flags.cfg.Plans[adaptive.Simple] = adaptive.Plan{ch, ch, ch}
			flags.cfg.Force = adaptive.Simple
		} else if flags.cfg.Forced {
			if flags.cfg.Force, err = adaptive.ParseTier(row); err != nil {
				return nil, err
			}
		}
		if planner, err = flags.Planner(lm, o.Threads, nil); err != nil {
			return nil, err
		}
		defer planner.Close()
	}

	r := m.NewRunner(model.Options{Threads: o.Threads, MaxBatch: o.Ctx})
	defer r.Close()
	popt := model.PerplexityOptions{Ctx: o.Ctx, BOS: -1, KV: model.KVF16}
	if lm.tok.AddBOS() {
		popt.BOS = lm.tok.BOS()
	}
	if planner != nil {
		start := time.Now()
		prec, sum, err := flags.perplexityPlansWith(ctx, planner, lm, toks, o.Ctx)
		if err != nil {
			return nil, err
		}
		res.CopySeconds = time.Since(start).Seconds()
		popt.Precision = prec
		res.Chunks, res.Fallbacks = sum.Chunks, sum.Fallbacks
		var plans []string
		res.WeightBytes = 0
		for _, t := range adaptive.Tiers() {
			k := t.String()
			if sum.Chunks[k] > 0 {
				plans = append(plans, sum.Plans[k])
				res.WeightBytes += sum.WeightBytes[k] * int64(sum.Chunks[k])
			}
		}
		res.WeightBytes /= int64(len(toks) / o.Ctx)
		res.Plan = strings.Join(plans, " or ") // no "|": the plan goes in a markdown cell
	}
	// Speed: prefill the text's first --ctx tokens as one batch, then
	// decode -n greedy tokens; -r timed runs after a warm-up.
	prompt := toks[:o.Ctx]
	seq, err := m.NewSequence(len(prompt)+o.Decode+1, model.KVF16)
	if err != nil {
		return nil, err
	}
	res.DecodeTier = "base"
	if planner != nil {
		d, err := planner.Decide(ctx, prompt)
		if err != nil {
			return nil, err
		}
		seq.SetPrecision(d.ModelPrecision())
		defer seq.SetPrecision(nil)
		res.DecodeTier = d.Tier.String()
	}
	var pp, tg []float64
	for rep := 0; rep <= o.Reps; rep++ { // run 0 warms up
		seq.Len = 0
		var next int32
		start := time.Now()
		if err := r.Eval(ctx, seq, prompt, false, func(_ int, l []float32) error {
			next = int32(argmax(l))
			return nil
		}); err != nil {
			return nil, err
		}
		ppTime := time.Since(start)
		one := [1]int32{}
		start = time.Now()
		for i := 0; i < o.Decode; i++ {
			one[0] = next
			if err := r.Eval(ctx, seq, one[:], false, func(_ int, l []float32) error {
				next = int32(argmax(l))
				return nil
			}); err != nil {
				return nil, err
			}
		}
		if rep > 0 {
			pp = append(pp, float64(len(prompt))/ppTime.Seconds())
			if o.Decode > 0 {
				tg = append(tg, float64(o.Decode)/time.Since(start).Seconds())
			}
		}
	}
	// The best run: this machine is shared, and other work only slows
	// a run down.
	res.PromptTokS = slices.Max(pp)
	if len(tg) > 0 {
		res.DecodeTokS = slices.Max(tg)
	}
	if planner != nil {
		res.Released = planner.ReleasedBytes()
	}
	// Memory now: the copies made and attached, the decode runs done,
	// before the quality pass holds the base logits.
	debug.FreeOSMemory()
	res.RSS, res.PeakRSS = procMemory()

	if o.noQuality {
		return res, nil
	}
	nChunks := len(toks) / o.Ctx

	// Quality: the base row saves its logits, the others compare.
	var saved *ixlg.Writer
	var base *ixlg.File
	var kl model.KLStats
	if row == "base" {
		out, err := os.Create(o.baseLogits)
		if err != nil {
			return nil, err
		}
		defer out.Close()
		var targets []int32
		for c := 0; c < nChunks; c++ {
			targets = append(targets, toks[c*o.Ctx+o.Ctx/2+1:(c+1)*o.Ctx]...)
		}
		if saved, err = ixlg.NewWriter(out, targets, m.Config.Vocab); err != nil {
			return nil, err
		}
	} else if o.baseLogits != "" {
		in, err := os.Open(o.baseLogits)
		if err != nil {
			return nil, err
		}
		base, err = ixlg.Read(in)
		in.Close()
		if err != nil {
			return nil, err
		}
	}
	pos := 0
	popt.Logits = func(target int32, logits []float32) error {
		if saved != nil {
			return saved.WriteRow(logits)
		}
		if base != nil {
			if pos >= len(base.Tokens) || base.Tokens[pos] != target {
				return errors.New("base logits are for another text")
			}
			kl.Add(base.Row(pos), logits)
		}
		pos++
		return nil
	}
	pres, err := r.Perplexity(ctx, toks, popt)
	if err != nil {
		return nil, err
	}
	res.PPL, res.PPLErr = pres.PPL, pres.StdErr
	if saved != nil {
		if err := saved.Close(); err != nil {
			return nil, err
		}
	}
	if base != nil {
		kl.Finish()
		res.KL = &KLReport{Mean: kl.Mean, P99: kl.P99, Max: kl.Max, Top1: kl.Top1}
	}

	return res, nil
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// markdown writes the report as a markdown table.
func (rep *AdaptiveBenchReport) markdown(w io.Writer) {
	fmt.Fprintf(w, "model `%s`, %d layers (%s); text `%s`, %d chunks of %d tokens; %d threads; decode %d tokens\n\n",
		filepath.Base(rep.Model), rep.Layers, rep.Bands, filepath.Base(rep.Text), rep.Chunks, rep.Ctx, rep.Threads, rep.Decode)
	fmt.Fprintf(w, "| row | plan: requested (used) | weights MiB | PPL | KL mean | KL p99 | top-1 | prompt tok/s | decode tok/s | RSS MiB | peak RSS MiB |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	baseSpeed, baseDecode := rep.Rows[0].PromptTokS, rep.Rows[0].DecodeTokS
	for _, r := range rep.Rows {
		name := r.Row
		if t, ok := strings.CutPrefix(r.Row, "uniform-"); ok {
			name = "every layer " + t + " (reference)"
		}
		if r.Row == "scored" {
			var parts []string
			for _, t := range adaptive.Tiers() {
				if n := r.Chunks[t.String()]; n > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", n, t))
				}
			}
			name += " (" + strings.Join(parts, ", ") + ")"
		}
		kl, p99, top1 := "—", "—", "—"
		if r.KL != nil {
			kl, p99, top1 = fmt.Sprintf("%.5f", r.KL.Mean), fmt.Sprintf("%.4f", r.KL.P99), fmt.Sprintf("%.2f%%", 100*r.KL.Top1)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f (%+.0f%%) | %.3f | %s | %s | %s | %.0f (%+.0f%%) | %.1f (%+.0f%%) | %.1f | %.1f |\n",
			name, r.Plan, float64(r.WeightBytes)/(1<<20), pct(float64(r.WeightBytes), float64(r.BaseBytes)),
			r.PPL, kl, p99, top1, r.PromptTokS, pct(r.PromptTokS, baseSpeed), r.DecodeTokS, pct(r.DecodeTokS, baseDecode),
			float64(r.RSS)/(1<<20), float64(r.PeakRSS)/(1<<20))
	}
	var fb []string
	for _, r := range rep.Rows {
		for _, f := range r.Fallbacks {
			if !containsString(fb, f) {
				fb = append(fb, f)
			}
		}
	}
	if len(fb) > 0 {
		fmt.Fprintf(w, "\nFallbacks (llama.cpp's rule for rows the requested type's blocks do not divide):\n")
		for _, f := range fb {
			fmt.Fprintf(w, "- %s\n", f)
		}
	}
}

func pct(x, base float64) float64 {
	if base == 0 {
		return 0
	}
	return 100 * (x/base - 1)
}

func containsString(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
