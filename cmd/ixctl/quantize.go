package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/quantize"
)

// QuantizeOptions are the inputs of `ixctl quantize`.
type QuantizeOptions struct {
	In, Out     string
	Type        string
	Pure        bool
	Threads     int
	ImatrixOnes bool
	Verbose     bool
	DryRun      bool
	NoProgress  bool
	Output      cli.Output

	target quantize.Target
}

func newQuantizeCmd(s cli.Streams) *cobra.Command {
	o := &QuantizeOptions{}
	cmd := &cobra.Command{
		Use:   "quantize IN.gguf OUT.gguf TYPE [--pure] [--threads N]",
		Short: "Requantize a GGUF model the way llama.cpp's quantize tool does",
		Long: `quantize converts a model to TYPE as llama-quantize does: the same type for
every tensor, the same bytes (for the deterministic quantizers), tensors in
llama.cpp's order, general.file_type and general.quantization_version set.

TYPE is one of llama-quantize's presets:
` + quantizeTypeList() + `
Mixed presets choose per tensor: output and token embedding get Q6_K (or
Q8_0), attn_v and ffn_down get more bits in some layers, 8-expert models
keep attn_v/attn_k in Q8_0, MXFP4_MOE converts only expert tensors, and rows
that are not a whole number of blocks fall back to a type that fits.
--pure gives every quantizable tensor TYPE's base type (fallbacks still
apply). A bare ggml type that is not a preset name (Q4_K, Q5_K, Q3_K, MXFP4)
means --pure with that type; note llama-quantize reads Q4_K as Q4_K_M.

Norms, 1-D tensors and expert routers (ffn_gate_inp) are never quantized.
Quantized input is decoded and requantized (lower quality than starting
from F32/F16). Types that need an importance matrix (IQ1/IQ2, IQ3_XXS,
Q2_K_S) are refused unless --imatrix-ones supplies a synthetic all-ones one.`,
		Example: `  ixctl quantize model.F16.gguf model.Q4_K_M.gguf Q4_K_M
  ixctl quantize model.F32.gguf model.Q8_0.gguf Q8_0 --pure --threads 8
  ixctl quantize model.gguf out.gguf IQ4_XS -o json | jq .out_bytes`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.In, o.Out, o.Type = args[0], args[1], args[2]
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd, s)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Pure, "pure", false, "every quantizable tensor in TYPE's base type (no per-tensor upgrades)")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads converting rows (0: one per CPU)")
	f.BoolVar(&o.ImatrixOnes, "imatrix-ones", false, "quantize with a synthetic all-ones importance matrix (for tests; changes some choices as a real one would)")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "print every tensor's conversion")
	f.BoolVar(&o.DryRun, "dry-run", false, "plan the conversion and print the summary without writing OUT.gguf")
	f.BoolVar(&o.NoProgress, "no-progress", false, "no progress bar on stderr")
	cli.AddOutputFlag(cmd, &o.Output)
	return cmd
}

func quantizeTypeList() string {
	var b strings.Builder
	for _, p := range quantize.Presets() {
		fmt.Fprintf(&b, "  %-10s %s\n", p.Name, p.Help)
	}
	return b.String()
}

// Complete parses TYPE and checks the paths.
func (o *QuantizeOptions) Complete() error {
	t, err := quantize.ParseTarget(o.Type, o.Pure)
	if err != nil {
		return cli.Usage(err)
	}
	o.target = t
	if o.Threads < 0 {
		return cli.Usage(fmt.Errorf("--threads %d must not be negative", o.Threads))
	}
	if same, _ := samePath(o.In, o.Out); same {
		return cli.Usage(errors.New("OUT.gguf must differ from IN.gguf (the input is read while the output is written)"))
	}
	return nil
}

func samePath(a, b string) (bool, error) {
	ia, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	ib, err := os.Stat(b)
	if err != nil {
		aa, _ := filepath.Abs(a)
		bb, _ := filepath.Abs(b)
		return aa == bb, nil
	}
	return os.SameFile(ia, ib), nil
}

// QuantizeResult is the JSON shape of `quantize -o json`.
type QuantizeResult struct {
	In            string  `json:"in"`
	Out           string  `json:"out"`
	InFileBytes   int64   `json:"in_file_bytes"`
	OutFileBytes  int64   `json:"out_file_bytes"`
	BitsPerWeight float64 `json:"bits_per_weight"`
	Seconds       float64 `json:"seconds"`
	quantize.Report
}

// Run converts the model and prints the before/after summary.
func (o *QuantizeOptions) Run(cmd *cobra.Command, s cli.Streams) (err error) {
	in, err := gguf.Open(o.In)
	if err != nil {
		return err
	}
	defer in.Close()
	opt := quantize.Options{Target: o.target, Threads: o.Threads, ImatrixOnes: o.ImatrixOnes}
	if o.DryRun {
		rep, err := quantize.Describe(in, opt)
		if err != nil {
			return o.explain(err)
		}
		return o.print(s, in, QuantizeResult{In: o.In, Out: o.Out, BitsPerWeight: rep.BitsPerWeight(), Report: rep}, 0)
	}
	out, err := os.Create(o.Out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(o.Out)
		}
	}()
	update, finish := newProgress(s.Err, "quantize", o.NoProgress)
	opt.Progress = update
	start := time.Now()
	rep, err := quantize.Quantize(cmd.Context(), in, out, opt)
	finish()
	if err != nil {
		return o.explain(err)
	}
	elapsed := time.Since(start)
	res := QuantizeResult{In: o.In, Out: o.Out, BitsPerWeight: rep.BitsPerWeight(), Seconds: elapsed.Seconds(), Report: rep}
	if st, err := out.Stat(); err == nil {
		res.OutFileBytes = st.Size()
	}
	return o.print(s, in, res, elapsed)
}

// explain adds the flag that lifts an importance-matrix refusal.
func (o *QuantizeOptions) explain(err error) error {
	if errors.Is(err, quantize.ErrNeedsImatrix) {
		return fmt.Errorf("%w (--imatrix-ones)", err)
	}
	return err
}

// print writes the summary (elapsed 0: a dry run).
func (o *QuantizeOptions) print(s cli.Streams, in *gguf.File, res QuantizeResult, elapsed time.Duration) error {
	rep := res.Report
	for i := 0; i < in.Parts(); i++ {
		res.InFileBytes += in.FileSize(i)
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, res)
	}
	if o.Verbose {
		tw := tabwriter.NewWriter(s.Out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TENSOR\tSHAPE\tFROM\tTO\tBYTES\tNOTE")
		for _, t := range rep.Tensors {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%d\t%s\n", t.Name, t.Shape, t.From, t.To, t.OutBytes, t.Fallback)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	inBPW := float64(rep.InBytes) * 8 / float64(max(rep.Params, 1))
	verb := "quantized"
	if elapsed == 0 {
		verb = "would quantize"
	}
	fmt.Fprintf(s.Out, "%s %s -> %s as %s (file type %d)\n", verb, o.In, o.Out, rep.Target, rep.FileType)
	fmt.Fprintf(s.Out, "size: %s -> %s of tensor data (%.2f -> %.2f bpw, %.1f%%)\n",
		bytesize.Format(rep.InBytes), bytesize.Format(rep.OutBytes), inBPW, rep.BitsPerWeight(),
		100*float64(rep.OutBytes)/float64(max(rep.InBytes, 1)))
	fmt.Fprintf(s.Out, "tensors: %d (%s)\n", len(rep.Tensors), typeCounts(rep.TypeCounts))
	if n := countFallbacks(rep); n > 0 {
		fmt.Fprintf(s.Out, "fallbacks: %d tensors have rows that do not fit the preferred type (-v lists them)\n", n)
	}
	if rep.Requantized {
		fmt.Fprintln(s.Out, "note: quantized input was decoded and requantized; quantizing from F32/F16 gives better quality")
	}
	if elapsed > 0 {
		fmt.Fprintf(s.Out, "time: %s, file %s (%.1f MB/s written)\n", elapsed.Round(time.Millisecond),
			bytesize.Format(res.OutFileBytes), mbPerSec(res.OutFileBytes, elapsed))
	}
	return nil
}

func countFallbacks(r quantize.Report) int {
	n := 0
	for _, t := range r.Tensors {
		if t.Fallback != "" {
			n++
		}
	}
	return n
}
