package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/model"
)

// BenchOptions are the inputs of `coordinator bench`.
type BenchOptions struct {
	Model   string
	PP      int
	TG      int
	Reps    int
	Threads int
	Batch   int
	KVType  string
	Profile string
	Output  cli.Output
}

func newBenchCmd(s cli.Streams) *cobra.Command {
	o := &BenchOptions{}
	cmd := &cobra.Command{
		Use:   "bench -m MODEL [-p 512] [-n 128] [-r 5] [-t 2] [-o json]",
		Short: "Measure prompt processing and generation speed like llama-bench",
		Long: `bench measures prompt processing (pp: -p random tokens in one batch from an
empty cache) and text generation (tg: -n single-token decodes from an
empty cache) separately, after one warm-up, and reports the median of -r
repetitions in tokens per second. The warm-up is llama-bench's: one pp run,
and a single-token decode before tg.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Model == "" {
				return cli.Usage(fmt.Errorf("give a model with -m"))
			}
			if o.PP < 0 || o.TG < 0 || o.Reps < 1 || o.PP+o.TG == 0 {
				return cli.Usage(fmt.Errorf("-p %d, -n %d, -r %d: need -p or -n > 0 and -r >= 1", o.PP, o.TG, o.Reps))
			}
			if err := cli.Threads(o.Threads); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "GGUF model file")
	f.IntVarP(&o.PP, "n-prompt", "p", 512, "prompt tokens per pp test (0: skip)")
	f.IntVarP(&o.TG, "n-gen", "n", 128, "generated tokens per tg test (0: skip)")
	f.IntVarP(&o.Reps, "repetitions", "r", 5, "repetitions per test")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads (0: one per CPU)")
	f.IntVarP(&o.Batch, "batch", "b", 512, "tokens per forward pass in pp")
	f.StringVar(&o.KVType, "kv-type", "f16", "KV cache type: f16 or f32")
	f.StringVar(&o.Profile, "cpuprofile", "", "write a CPU profile of the measured runs to this file")
	cli.AddOutputFlag(cmd, &o.Output)
	llamaAliases(f)
	return cmd
}

// BenchResult is the JSON output of bench.
type BenchResult struct {
	Model    string    `json:"model"`
	Threads  int       `json:"threads"`
	PPTokens int       `json:"pp_tokens"`
	PPTokS   float64   `json:"pp_tok_s"`
	TGTokens int       `json:"tg_tokens"`
	TGTokS   float64   `json:"tg_tok_s"`
	PPAll    []float64 `json:"pp_tok_s_all,omitempty"`
	TGAll    []float64 `json:"tg_tok_s_all,omitempty"`
	LoadS    float64   `json:"load_s"`
}

// Run benchmarks.
func (o *BenchOptions) Run(ctx context.Context, s cli.Streams) error {
	kv, err := model.ParseKVType(o.KVType)
	if err != nil {
		return err
	}
	lm, err := loadLocalModel(o.Model, false)
	if err != nil {
		return err
	}
	defer lm.Close()
	m := lm.model
	r := m.NewRunner(model.Options{Threads: o.Threads, MaxBatch: max(1, min(o.Batch, o.PP))})
	defer r.Close()
	seq, err := m.NewSequence(max(o.PP, o.TG, 1), kv)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prompt := make([]int32, o.PP)
	for i := range prompt {
		prompt[i] = int32(rng.IntN(m.Config.Vocab))
	}
	res := BenchResult{Model: o.Model, Threads: r.Threads(), PPTokens: o.PP, TGTokens: o.TG, LoadS: lm.took.Seconds()}
	discard := func(int, []float32) error { return nil }
	pp := func() (float64, error) {
		seq.Len = 0
		start := time.Now()
		if err := r.Eval(ctx, seq, prompt, false, discard); err != nil {
			return 0, err
		}
		return float64(o.PP) / time.Since(start).Seconds(), nil
	}
	tg := func() (float64, error) {
		seq.Len = 0
		tok := [1]int32{int32(rng.IntN(m.Config.Vocab))}
		start := time.Now()
		for i := 0; i < o.TG; i++ {
			if err := r.Eval(ctx, seq, tok[:], false, discard); err != nil {
				return 0, err
			}
		}
		return float64(o.TG) / time.Since(start).Seconds(), nil
	}
	if o.Profile != "" {
		pf, err := os.Create(o.Profile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	warmTG := func() error {
		seq.Len = 0
		tok := [1]int32{int32(rng.IntN(m.Config.Vocab))}
		return r.Eval(ctx, seq, tok[:], false, discard)
	}
	warmPP := func() error { _, err := pp(); return err }
	for _, t := range []struct {
		n    int
		f    func() (float64, error)
		warm func() error
		all  *[]float64
		med  *float64
	}{{o.PP, pp, warmPP, &res.PPAll, &res.PPTokS}, {o.TG, tg, warmTG, &res.TGAll, &res.TGTokS}} {
		if t.n == 0 {
			continue
		}
		if err := t.warm(); err != nil { // warm-up, as llama-bench: the whole prompt, or one token
			return err
		}
		for i := 0; i < o.Reps; i++ {
			v, err := t.f()
			if err != nil {
				return err
			}
			*t.all = append(*t.all, v)
		}
		*t.med = median(*t.all)
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, res)
	}
	fmt.Fprintf(s.Out, "| model | threads | test | t/s |\n|---|---|---|---|\n")
	if o.PP > 0 {
		fmt.Fprintf(s.Out, "| %s | %d | pp%d | %.2f |\n", o.Model, res.Threads, o.PP, res.PPTokS)
	}
	if o.TG > 0 {
		fmt.Fprintf(s.Out, "| %s | %d | tg%d | %.2f |\n", o.Model, res.Threads, o.TG, res.TGTokS)
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
