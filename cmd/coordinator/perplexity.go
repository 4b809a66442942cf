package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/ixlg"
	"github.com/inference-x/inference-x/model"
)

// PerplexityOptions are the inputs of `coordinator perplexity`.
type PerplexityOptions struct {
	Model      string
	File       string
	Ctx        int
	Threads    int
	Batch      int
	KVType     string
	Chunks     int
	SaveLogits string
	KLBase     string
	Output     cli.Output
	Adaptive   AdaptiveFlags
}

func newPerplexityCmd(s cli.Streams) *cobra.Command {
	o := &PerplexityOptions{}
	cmd := &cobra.Command{
		Use:   "perplexity -m MODEL -f TEXT [--ctx N] [--save-logits FILE] [--kl-base FILE]",
		Short: "Measure perplexity on a text the way llama.cpp's perplexity tool does",
		Long: `perplexity tokenizes TEXT (with BOS), cuts it into non-overlapping chunks of
--ctx tokens, evaluates each chunk from an empty cache with its first token
replaced by BOS, and scores the second half of each chunk, as llama.cpp's
llama-perplexity does. It prints the running estimate per chunk and the
final PPL with its +/- figure.

--save-logits writes the logits of every scored position (IXLG format);
--kl-base compares against such a file from another run (the base model)
and reports mean KL divergence, its 99th percentile and top-1 agreement.`,
		Example: `  coordinator perplexity -m stories260K.gguf -f war-and-peace-40k.txt --ctx 128
  coordinator perplexity -m base.gguf -f text.txt --save-logits base.ixlg
  coordinator perplexity -m quant.gguf -f text.txt --kl-base base.ixlg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Model == "" || o.File == "" {
				return cli.Usage(errors.New("give a model with -m and a text with -f"))
			}
			if err := cli.Threads(o.Threads); err != nil {
				return err
			}
			if err := o.Adaptive.Validate(o.Model); err != nil {
				return err
			}
			return o.Run(cmd, s)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "GGUF model file")
	f.StringVarP(&o.File, "file", "f", "", "text file to score")
	f.IntVarP(&o.Ctx, "ctx", "c", 512, "chunk length in tokens")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads (0: one per CPU)")
	f.IntVarP(&o.Batch, "batch", "b", 512, "tokens per forward pass")
	f.StringVar(&o.KVType, "kv-type", "f16", "KV cache type: f16 or f32")
	f.IntVar(&o.Chunks, "chunks", 0, "score at most this many chunks (0: all)")
	f.StringVar(&o.SaveLogits, "save-logits", "", "write the scored positions' logits to FILE")
	f.StringVar(&o.KLBase, "kl-base", "", "compare with logits saved by --save-logits")
	cli.AddOutputFlag(cmd, &o.Output)
	o.Adaptive.AddFlags(f, false)
	llamaAliases(f)
	return cmd
}

// PerplexityReport is the JSON output.
type PerplexityReport struct {
	Model   string    `json:"model"`
	Ctx     int       `json:"ctx"`
	Chunks  int       `json:"chunks"`
	Scored  int       `json:"scored"`
	PPL     float64   `json:"ppl"`
	StdErr  float64   `json:"ppl_stderr"`
	Running []float64 `json:"running_ppl"`
	KL      *KLReport `json:"kl,omitempty"`
	Seconds float64   `json:"seconds"`

	Adaptive *AdaptiveSummary `json:"adaptive,omitempty"`
}

// KLReport compares against base logits.
type KLReport struct {
	Mean float64 `json:"mean"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Top1 float64 `json:"top1_agreement"`
}

// Run computes perplexity.
func (o *PerplexityOptions) Run(cmd *cobra.Command, s cli.Streams) error {
	kv, err := model.ParseKVType(o.KVType)
	if err != nil {
		return err
	}
	text, err := readInputFile(o.File)
	if err != nil {
		return err
	}
	lm, err := loadLocalModel(o.Model, true)
	if err != nil {
		return err
	}
	defer lm.Close()
	toks := lm.tok.Encode(string(text), true, false)
	if o.Chunks > 0 && len(toks) > o.Chunks*o.Ctx {
		toks = toks[:o.Chunks*o.Ctx]
	}
	if len(toks) < o.Ctx {
		return fmt.Errorf("%s has %d tokens, fewer than one chunk of --ctx %d", o.File, len(toks), o.Ctx)
	}
	bos := int32(-1)
	if lm.tok.AddBOS() {
		bos = lm.tok.BOS()
	}
	r := lm.model.NewRunner(model.Options{Threads: o.Threads, MaxBatch: min(o.Batch, o.Ctx)})
	defer r.Close()

	rep := PerplexityReport{Model: o.Model, Ctx: o.Ctx}
	popt := model.PerplexityOptions{Ctx: o.Ctx, BOS: bos, KV: kv}
	planner, prec, summary, err := o.Adaptive.perplexityPlans(cmd.Context(), lm, o.Threads, toks, o.Ctx)
	if err != nil {
		return err
	}
	if planner != nil {
		defer planner.Close()
		popt.Precision, rep.Adaptive = prec, summary
	}
	popt.Chunk = func(i, n int, ppl float64) {
		rep.Running = append(rep.Running, ppl)
		if o.Output == cli.OutputText {
			fmt.Fprintf(s.Out, "[%d]%.4f,", i+1, ppl)
			if (i+1)%10 == 0 || i+1 == n {
				fmt.Fprintln(s.Out)
			}
		}
	}
	n := len(toks) / o.Ctx
	scored := n * (o.Ctx - 1 - o.Ctx/2)
	var saved *ixlg.Writer
	var targets []int32
	if o.SaveLogits != "" {
		out, err := os.Create(o.SaveLogits)
		if err != nil {
			return err
		}
		defer out.Close()
		targets = make([]int32, 0, scored)
		for c := 0; c < n; c++ {
			targets = append(targets, toks[c*o.Ctx+o.Ctx/2+1:(c+1)*o.Ctx]...)
		}
		if saved, err = ixlg.NewWriter(out, targets, lm.model.Config.Vocab); err != nil {
			return err
		}
	}
	var base *ixlg.File
	var kl model.KLStats
	if o.KLBase != "" {
		in, err := os.Open(o.KLBase)
		if err != nil {
			return err
		}
		base, err = ixlg.Read(in)
		in.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", o.KLBase, err)
		}
		if len(base.Tokens) != scored || base.NVocab != lm.model.Config.Vocab {
			return fmt.Errorf("%s holds %d positions of %d logits; this run scores %d of %d (same text, --ctx and vocabulary needed)",
				o.KLBase, len(base.Tokens), base.NVocab, scored, lm.model.Config.Vocab)
		}
	}
	pos := 0
	if saved != nil || base != nil {
		popt.Logits = func(target int32, logits []float32) error {
			if saved != nil {
				if err := saved.WriteRow(logits); err != nil {
					return err
				}
			}
			if base != nil {
				if base.Tokens[pos] != target {
					return fmt.Errorf("%s: position %d predicts token %d, this run %d: not the same text", o.KLBase, pos, base.Tokens[pos], target)
				}
				kl.Add(base.Row(pos), logits)
			}
			pos++
			return nil
		}
	}
	start := time.Now()
	res, err := r.Perplexity(cmd.Context(), toks, popt)
	if err != nil {
		return err
	}
	if saved != nil {
		if err := saved.Close(); err != nil {
			return err
		}
	}
	rep.Chunks, rep.Scored, rep.PPL, rep.StdErr = res.Chunks, res.Scored, res.PPL, res.StdErr
	rep.Seconds = time.Since(start).Seconds()
	if base != nil {
		kl.Finish()
		rep.KL = &KLReport{Mean: kl.Mean, P99: kl.P99, Max: kl.Max, Top1: kl.Top1}
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, rep)
	}
	fmt.Fprintf(s.Out, "Final estimate: PPL = %.4f +/- %.5f   (%d tokens, %d chunks of %d, %d scored, %.1f s)\n",
		res.PPL, res.StdErr, len(toks), res.Chunks, o.Ctx, res.Scored, rep.Seconds)
	if rep.KL != nil {
		fmt.Fprintf(s.Out, "KL divergence vs %s: mean %.6f, 99th percentile %.6f, max %.6f, same top token %.2f%%\n",
			o.KLBase, kl.Mean, kl.P99, kl.Max, 100*kl.Top1)
	}
	if rep.Adaptive != nil {
		rep.Adaptive.print(s.Out)
	}
	return nil
}
