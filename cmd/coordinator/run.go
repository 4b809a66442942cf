package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/ixlg"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/tokenizer"
)

// RunOptions are the inputs of `coordinator run`.
type RunOptions struct {
	Model        string
	Prompt       string
	PromptFile   string
	PromptTokens string
	N            int
	Threads      int
	Ctx          int
	Batch        int
	KVType       string
	LogitsOut    string
	Chat         bool
	System       string
	Stop         []string
	Sampler      model.SamplerConfig
	Seed         int64
	ExpertStats  bool
	Cluster      ClusterOptions
	Verbose      bool
	NoEcho       bool
	CPUProfile   string
	Pager        PagerOptions
	Adaptive     AdaptiveFlags

	tokens []int32
	kv     model.KVType
}

func newRunCmd(s cli.Streams) *cobra.Command {
	o := &RunOptions{}
	cmd := &cobra.Command{
		Use:   "run -m MODEL (-p PROMPT | -f FILE | --prompt-tokens 1,2,3) [flags]",
		Short: "Generate text from a prompt, streaming it to stdout",
		Long: `run loads a GGUF model, evaluates the prompt as one batch and generates up
to -n tokens, streaming the text to stdout. Timings go to stderr as
llama.cpp prints them: load time, prompt tokens/s, generation tokens/s.

-n 0 evaluates the prompt only (useful with --logits-out). --prompt-tokens
takes token ids as given: no BOS is added. --temp 0 is greedy decoding.`,
		Example: `  coordinator run -m model.gguf -p "Once upon a time" -n 64
  coordinator run -m model.gguf --chat -p "What is a mixture of experts?"
  coordinator run -m model.gguf --prompt-tokens 1,403,407 -n 0 --kv-type f32 --logits-out out.ixlg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "GGUF model file (first part of a split model)")
	f.StringVarP(&o.Prompt, "prompt", "p", "", "prompt text")
	f.StringVarP(&o.PromptFile, "file", "f", "", "read the prompt from a file")
	f.StringVar(&o.PromptTokens, "prompt-tokens", "", "comma-separated token ids, used as given (no BOS added)")
	f.IntVarP(&o.N, "n-predict", "n", 128, "tokens to generate (0: evaluate the prompt only)")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads (0: one per CPU)")
	f.IntVarP(&o.Ctx, "ctx", "c", 4096, "context size in tokens (capped at the model's training context)")
	f.IntVarP(&o.Batch, "batch", "b", 512, "prompt tokens per forward pass")
	f.StringVar(&o.KVType, "kv-type", "f16", "KV cache type: f16 or f32")
	f.StringVar(&o.LogitsOut, "logits-out", "", "write the logits of every prompt position to FILE (IXLG format)")
	f.BoolVar(&o.Chat, "chat", false, "wrap the prompt in the model's chat template")
	f.StringVar(&o.System, "system", "", "system message for --chat")
	f.StringArrayVar(&o.Stop, "stop", nil, "stop when the output contains this string (repeatable)")
	f.Float32Var(&o.Sampler.Temperature, "temp", 0.8, "sampling temperature (0: greedy)")
	f.IntVar(&o.Sampler.TopK, "top-k", 40, "top-k sampling (0: off)")
	f.Float32Var(&o.Sampler.TopP, "top-p", 0.95, "top-p sampling (1: off)")
	f.Float32Var(&o.Sampler.MinP, "min-p", 0.05, "min-p sampling (0: off)")
	f.Float32Var(&o.Sampler.Repeat, "repeat-penalty", 1, "repetition penalty (1: off)")
	f.Float32Var(&o.Sampler.Presence, "presence-penalty", 0, "presence penalty")
	f.Float32Var(&o.Sampler.Frequency, "frequency-penalty", 0, "frequency penalty")
	f.IntVar(&o.Sampler.PenaltyLastN, "repeat-last-n", 64, "tokens the penalties look back over")
	f.Int64VarP(&o.Seed, "seed", "s", -1, "sampling seed (-1: random)")
	f.BoolVar(&o.ExpertStats, "expert-stats", false, "print per-layer expert activation counts and the expert store's stats (residency, hits, prediction, disk reads, time per token) at the end")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "print model details to stderr")
	o.Cluster.AddFlags(f)
	o.Cluster.Log.AddFormatFlag(f)
	f.BoolVar(&o.NoEcho, "no-display-prompt", false, "do not print the prompt before the generated text")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a Go CPU profile of the run to FILE")
	o.Pager.AddFlags(f)
	f.MarkHidden("cpuprofile")
	o.Adaptive.AddFlags(f, false)
	llamaAliases(f)
	return cmd
}

// Validate checks flag combinations.
func (o *RunOptions) Validate() error {
	if err := o.Cluster.Validate(); err != nil {
		return err
	}
	n := 0
	for _, s := range []string{o.Prompt, o.PromptFile, o.PromptTokens} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return cli.Usage(errors.New("give exactly one of -p PROMPT, -f FILE or --prompt-tokens IDS"))
	}
	if o.PromptTokens != "" && o.Chat {
		return cli.Usage(errors.New("--chat needs a text prompt, not --prompt-tokens"))
	}
	if o.N < 0 {
		return cli.Usage(fmt.Errorf("-n %d: must be >= 0", o.N))
	}
	if err := cli.Threads(o.Threads); err != nil {
		return err
	}
	if o.Ctx <= 0 || o.Batch <= 0 {
		return cli.Usage(fmt.Errorf("--ctx %d and --batch %d must be positive", o.Ctx, o.Batch))
	}
	if err := o.Pager.Validate(); err != nil {
		return cli.Usage(err)
	}
	if o.Cluster.Enabled() && o.Pager.budget > 0 {
		return cli.Usage(fmt.Errorf("--expert-mem %s: the pager runs in single-node mode only, not with --nodes", o.Pager.Mem))
	}
	kv, err := model.ParseKVType(o.KVType)
	if err != nil {
		return cli.Usage(err)
	}
	o.kv = kv
	if err := o.Adaptive.Validate(o.Model); err != nil {
		return err
	}
	if o.PromptTokens != "" {
		for _, f := range strings.Split(o.PromptTokens, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
			if err != nil {
				return cli.Usage(fmt.Errorf("--prompt-tokens: %q is not a token id", f))
			}
			o.tokens = append(o.tokens, int32(v))
		}
	}
	if o.Seed < 0 {
		o.Sampler.Seed = uint64(time.Now().UnixNano())
	} else {
		o.Sampler.Seed = uint64(o.Seed)
	}
	return cli.Usage(o.Sampler.Validate())
}

// Run loads the model and generates.
func (o *RunOptions) Run(ctx context.Context, s cli.Streams) error {
	if o.CPUProfile != "" {
		pf, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	lm, err := loadModel(o.Model, o.PromptTokens == "")
	if err == nil && lm.tok == nil {
		lm.tok, _ = tokenizer.New(lm.file) // for text output and EOG; ids are printed without it
	}
	if err != nil {
		return err
	}
	defer lm.Close()
	m := lm.model
	if o.Verbose {
		c := m.Config
		fmt.Fprintf(s.Err, "model: %s, %d layers, embd %d, %d heads (%d kv), vocab %d, experts %d (top %d)\n",
			c.Arch, c.Layers, c.Embd, c.Heads, c.KVHeads, c.Vocab, c.Experts, c.ExpertsUsed)
	}
	prompt, err := o.promptTokens(lm)
	if err != nil {
		return err
	}
	nctx := min(o.Ctx, max(m.Config.CtxTrain, 1))
	if len(prompt)+o.N > nctx {
		if len(prompt) > nctx {
			return fmt.Errorf("prompt of %d tokens is longer than the context of %d (raise --ctx)", len(prompt), nctx)
		}
	}
	seq, err := m.NewSequence(nctx, o.kv)
	if err != nil {
		return err
	}
	ropt, done, err := o.Cluster.RunnerOptions(ctx, lm.file, model.Options{Threads: o.Threads, MaxBatch: min(o.Batch, len(prompt))}, s.Err)
	if err != nil {
		return err
	}
	defer done()
	var store *experts.Store
	if ropt.Experts == nil {
		// Single-node mode: the experts come from the pager's store.
		var storeCloser io.Closer
		store, storeCloser, err = o.Pager.openStore(lm.file, o.Threads, seq.CacheBytes(), s.Err)
		if err != nil {
			return err
		}
		if store != nil {
			defer storeCloser.Close()
			defer store.Close()
			ropt.Experts = store
		}
	}
	runner := m.NewRunner(ropt)
	defer runner.Close()
	sampler, err := model.NewSampler(o.Sampler, m.Config.Vocab)
	if err != nil {
		return err
	}
	adaptiveDone, err := o.Adaptive.startRun(ctx, s.Err, lm, o.Threads, seq, prompt)
	if err != nil {
		return err
	}
	defer adaptiveDone()
	var lw *ixlg.Writer
	if o.LogitsOut != "" {
		out, err := os.Create(o.LogitsOut)
		if err != nil {
			return err
		}
		defer out.Close()
		if lw, err = ixlg.NewWriter(out, prompt, m.Config.Vocab); err != nil {
			return err
		}
	}
	for _, t := range prompt {
		sampler.Accept(t)
	}

	start := time.Now()
	var next int32
	err = runner.Eval(ctx, seq, prompt, lw != nil, func(i int, logits []float32) error {
		if lw != nil {
			if err := lw.WriteRow(logits); err != nil {
				return err
			}
		}
		if i == len(prompt)-1 {
			next = sampler.Sample(logits)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if lw != nil {
		if err := lw.Close(); err != nil {
			return err
		}
	}
	promptTime := time.Since(start)

	gen := &generation{out: s.Out, stop: o.Stop}
	if lm.tok != nil {
		gen.dec = lm.tok.NewDecoder(false)
	}
	if gen.dec != nil && o.N > 0 {
		// The prompt goes through the same streaming decoder so the first
		// generated piece keeps its leading space.
		echo := !o.NoEcho && !o.Chat && o.PromptTokens == ""
		for _, t := range prompt {
			if text := gen.dec.Add(t); echo {
				io.WriteString(s.Out, text)
			}
		}
	}
	start = time.Now()
	generated := 0
	var one [1]int32
	for generated < o.N {
		if lm.tok != nil && lm.tok.IsEOG(next) {
			break
		}
		generated++
		sampler.Accept(next)
		if gen.emit(lm, next) {
			break
		}
		if generated == o.N || seq.Len >= nctx {
			break
		}
		one[0] = next
		if err := runner.Eval(ctx, seq, one[:], false, func(_ int, logits []float32) error {
			next = sampler.Sample(logits)
			return nil
		}); err != nil {
			return err
		}
	}
	gen.flush()
	if generated > 0 {
		fmt.Fprintln(s.Out)
	}
	genTime := time.Since(start)
	printTimings(s.Err, lm.took, len(prompt), promptTime, generated, genTime)
	if o.ExpertStats {
		printExpertStats(s.Err, runner)
		printPagerStats(s.Err, &o.Pager, store, len(prompt), promptTime, generated, genTime)
	}
	return nil
}

// promptTokens turns the prompt options into token ids.
func (o *RunOptions) promptTokens(lm *loaded) ([]int32, error) {
	if o.tokens != nil {
		for _, t := range o.tokens {
			if t < 0 || int(t) >= lm.model.Config.Vocab {
				return nil, fmt.Errorf("--prompt-tokens: id %d is outside the vocabulary [0, %d)", t, lm.model.Config.Vocab)
			}
		}
		return o.tokens, nil
	}
	text := o.Prompt
	if o.PromptFile != "" {
		b, err := readInputFile(o.PromptFile)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	parseSpecial := false
	if o.Chat {
		tmpl, _ := lm.file.String("tokenizer.chat_template")
		var msgs []chat.Message
		if o.System != "" {
			msgs = append(msgs, chat.Message{Role: "system", Content: o.System})
		}
		msgs = append(msgs, chat.Message{Role: "user", Content: text})
		t, err := chat.Compile(tmpl)
		if err != nil {
			return nil, fmt.Errorf("the model's chat template: %w", err)
		}
		tok := lm.tok
		text, err = t.Render(msgs, chat.RenderOptions{
			BOS: tok.TokenText(tok.BOS()), EOS: tok.TokenText(tok.EOS()),
			AddGenerationPrompt: true, StripBOS: tok.AddBOS(),
		})
		if err != nil {
			return nil, err
		}
		parseSpecial = true
	}
	toks := lm.tok.Encode(text, true, parseSpecial)
	if len(toks) == 0 {
		return nil, errors.New("the prompt is empty after tokenization")
	}
	return toks, nil
}

// generation streams decoded text and watches for stop strings.
type generation struct {
	out     io.Writer
	dec     interface{ Add(int32) string }
	stop    []string
	pending strings.Builder // text held back while it may start a stop string
}

// emit writes the text of tok; it returns true when a stop string was hit.
func (g *generation) emit(lm *loaded, tok int32) bool {
	if g.dec == nil {
		fmt.Fprintf(g.out, "%d ", tok)
		return false
	}
	g.pending.WriteString(g.dec.Add(tok))
	text := g.pending.String()
	for _, s := range g.stop {
		if i := strings.Index(text, s); i >= 0 {
			io.WriteString(g.out, text[:i])
			g.pending.Reset()
			return true
		}
	}
	// Keep back the longest suffix that could begin a stop string.
	keep := 0
	for _, s := range g.stop {
		for k := min(len(s)-1, len(text)); k > keep; k-- {
			if strings.HasPrefix(s, text[len(text)-k:]) {
				keep = k
				break
			}
		}
	}
	io.WriteString(g.out, text[:len(text)-keep])
	g.pending.Reset()
	g.pending.WriteString(text[len(text)-keep:])
	return false
}

func (g *generation) flush() { io.WriteString(g.out, g.pending.String()) }

func printTimings(w io.Writer, load time.Duration, np int, pt time.Duration, ng int, gt time.Duration) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Fprintf(w, "\nix: load time        = %10.2f ms\n", ms(load))
	fmt.Fprintf(w, "ix: prompt eval time = %10.2f ms / %5d tokens (%8.2f ms per token, %8.2f tokens per second)\n",
		ms(pt), np, ms(pt)/float64(max(np, 1)), float64(np)/pt.Seconds())
	if ng > 0 {
		fmt.Fprintf(w, "ix:        eval time = %10.2f ms / %5d runs   (%8.2f ms per token, %8.2f tokens per second)\n",
			ms(gt), ng, ms(gt)/float64(ng), float64(ng)/gt.Seconds())
	}
	fmt.Fprintf(w, "ix:       total time = %10.2f ms / %5d tokens\n", ms(load+pt+gt), np+ng)
}

// printExpertStats prints how often each expert of each MoE layer was
// selected during the run (prompt and generation), busiest first.
func printExpertStats(w io.Writer, r *model.Runner) {
	counts := r.ExpertCounts()
	any := false
	for l, c := range counts {
		if c == nil {
			continue
		}
		any = true
		var total uint64
		used := 0
		for _, n := range c {
			total += n
			if n > 0 {
				used++
			}
		}
		ids := make([]int, len(c))
		for i := range ids {
			ids[i] = i
		}
		slices.SortStableFunc(ids, func(a, b int) int { return cmp.Compare(c[b], c[a]) })
		fmt.Fprintf(w, "layer %3d: %d selections, %d of %d experts used; busiest:", l, total, used, len(c))
		for _, id := range ids[:min(8, len(ids))] {
			if c[id] == 0 {
				break
			}
			fmt.Fprintf(w, " %d(%d)", id, c[id])
		}
		fmt.Fprintln(w)
	}
	if !any {
		fmt.Fprintln(w, "expert stats: the model has no MoE layers")
	}
}
