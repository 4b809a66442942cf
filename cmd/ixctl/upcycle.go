package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/synth"
)

// UpcycleOptions are the inputs of `ixctl upcycle`.
type UpcycleOptions struct {
	In, Out    string
	Upcycle    synth.UpcycleConfig
	NoProgress bool
	Output     cli.Output
}

func newUpcycleCmd(s cli.Streams) *cobra.Command {
	o := &UpcycleOptions{}
	cmd := &cobra.Command{
		Use:   "upcycle DENSE.gguf OUT.gguf --experts N --top-k K [--noise X] [--seed S]",
		Short: "Turn a dense llama-family model into a Mixtral-style mixture of experts",
		Long: `upcycle replaces every layer's FFN (ffn_gate, ffn_up, ffn_down) by N experts
that start as copies of it (3-D ffn_{gate,up,down}_exps tensors in the dense
model's own quant type, the bytes copied per expert) and a random router
(ffn_gate_inp, F32) that picks the top K per token. llama models stay llama
with expert_count/expert_used_count set (llama.cpp's Mixtral path);
qwen3 models become qwen3moe. Both renormalise the top-K router weights,
so with no noise the MoE computes exactly the dense model's function,
whatever the router says.

--noise X adds N(0, (X·rms(W))²) to each expert's copy of a weight W, so the
experts differ and routing matters (the tensors are decoded, perturbed and
re-encoded in their type). The same --seed gives the same file.`,
		Example: `  ixctl upcycle stories260K.gguf stories-moe.gguf --experts 64 --top-k 8
  ixctl upcycle llama-7b.Q4_K_M.gguf llama-8x7b.gguf --experts 8 --top-k 2 --noise 0.01`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.In, o.Out = args[0], args[1]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd, s)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Upcycle.Experts, "experts", 0, "experts per layer (required)")
	f.IntVar(&o.Upcycle.ExpertsUsed, "top-k", 0, "experts each token uses (required)")
	f.Float64Var(&o.Upcycle.Noise, "noise", 0, "relative noise added to each expert's weights (0: exact copies)")
	f.Uint64Var(&o.Upcycle.Seed, "seed", 1, "seed of the router weights and the noise")
	f.IntVarP(&o.Upcycle.Threads, "threads", "t", 0, "threads re-encoding noisy experts (0: one per CPU)")
	f.BoolVar(&o.NoProgress, "no-progress", false, "no progress bar on stderr")
	cli.AddOutputFlag(cmd, &o.Output)
	return cmd
}

// Validate checks the flags.
func (o *UpcycleOptions) Validate() error {
	if err := cli.Threads(o.Upcycle.Threads); err != nil {
		return err
	}
	if o.Upcycle.Experts == 0 || o.Upcycle.ExpertsUsed == 0 {
		return cli.Usage(errors.New("--experts N and --top-k K are required (e.g. --experts 8 --top-k 2)"))
	}
	if same, _ := samePath(o.In, o.Out); same {
		return cli.Usage(errors.New("OUT.gguf must differ from DENSE.gguf"))
	}
	return cli.Usage(o.Upcycle.Validate())
}

// UpcycleResult is the JSON shape of `upcycle -o json`.
type UpcycleResult struct {
	In           string  `json:"in"`
	Out          string  `json:"out"`
	OutFileBytes int64   `json:"out_file_bytes"`
	Seconds      float64 `json:"seconds"`
	synth.UpcycleReport
}

// Run writes the MoE model and prints the summary.
func (o *UpcycleOptions) Run(cmd *cobra.Command, s cli.Streams) (err error) {
	in, err := gguf.Open(o.In)
	if err != nil {
		return err
	}
	defer in.Close()
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
	update, finish := newProgress(s.Err, "upcycle", o.NoProgress)
	o.Upcycle.Progress = update
	start := time.Now()
	rep, err := synth.Upcycle(cmd.Context(), in, out, o.Upcycle)
	finish()
	if err != nil {
		return err
	}
	res := UpcycleResult{In: o.In, Out: o.Out, Seconds: time.Since(start).Seconds(), UpcycleReport: rep}
	if st, err := out.Stat(); err == nil {
		res.OutFileBytes = st.Size()
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, res)
	}
	fmt.Fprintf(s.Out, "upcycled %s (%s) -> %s (%s): %d layers, %d experts of width %d, top-%d, noise %g, experts in %s\n",
		o.In, rep.ArchIn, o.Out, rep.ArchOut, rep.Layers, rep.Experts, rep.FF, rep.ExpertsUsed, rep.Noise, rep.Type)
	fmt.Fprintf(s.Out, "size: %s -> %s of tensor data, %d tensors\n",
		bytesize.Format(rep.InBytes), bytesize.Format(rep.OutBytes), rep.Tensors)
	return nil
}
