package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/synth"
)

// SynthOptions are the inputs of `ixctl synth`.
type SynthOptions struct {
	Arch       string
	Preset     string
	Out        string
	Synth      synth.Options
	DryRun     bool
	NoProgress bool
	Output     cli.Output

	shape synth.Config // flag values; applied when the flag was set
	flags *pflag.FlagSet
	cfg   synth.Config
}

func newSynthCmd(s cli.Streams) *cobra.Command {
	o := &SynthOptions{}
	cmd := &cobra.Command{
		Use:   "synth (--arch ARCH | --preset NAME) --out FILE [--type T] [shape flags]",
		Short: "Write a synthetic GGUF model with deterministic random weights",
		Long: `synth writes a GGUF model with random weights of realistic scale (matrices
N(0, 1/fan_in), norms U(0.8, 1.2), LM head gain 3 so logits have a std of a
few units), a SentencePiece vocabulary of --vocab tokens (<unk> <s> </s>,
the 256 byte tokens, ASCII pieces, common words, generated pieces) and the
metadata llama.cpp reads, for tests, benchmarks and demos without
downloading weights.

Architectures: ` + strings.Join(synth.Architectures(), ", ") + `. --arch alone gives a tiny
model (2 layers, 256 wide); --preset gives a real shape:
` + presetList() + `
Shape flags override the preset's or the architecture's default.

--type is a llama.cpp preset (Q4_K_M, Q8_0, IQ4_XS, MXFP4_MOE, ...: each
tensor gets the type llama-quantize would give it) or a bare ggml type (F16,
Q4_K, Q5_K, ...: every matrix in that type); presets that need an importance
matrix get an all-ones one. The same flags and --seed give the same bytes,
whatever --threads is. A model written as F32 and quantized by llama.cpp
equals the model written directly in that type.`,
		Example: `  ixctl synth --arch llama --out tiny.gguf
  ixctl synth --arch deepseek2 --type Q4_K_M --out ds.gguf
  ixctl synth --preset llama-7b --type Q4_K_M --out llama-7b.Q4_K_M.gguf
  ixctl synth --preset kimi-k2-mini --layers 4 --type Q8_0 --out kimi4.gguf -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.flags = cmd.Flags()
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd, s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Arch, "arch", "", "architecture: "+strings.Join(synth.Architectures(), ", "))
	f.StringVar(&o.Preset, "preset", "", "real model shape: "+strings.Join(synth.PresetNames(), ", "))
	f.StringVar(&o.Out, "out", "", "output GGUF file")
	f.StringVar(&o.Synth.Type, "type", "F32", "weight type: a llama.cpp preset (Q4_K_M, Q8_0, ...) or a ggml type (F16, Q4_K, ...)")
	f.BoolVar(&o.Synth.Pure, "pure", false, "every quantizable tensor in the base type (no per-tensor upgrades)")
	f.Uint64Var(&o.Synth.Seed, "seed", 1, "random seed")
	f.IntVarP(&o.Synth.Threads, "threads", "t", 0, "threads drawing and quantizing weights (0: one per CPU)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the size and tensor types without writing (--out not needed)")
	f.BoolVar(&o.NoProgress, "no-progress", false, "no progress bar on stderr")
	cli.AddOutputFlag(cmd, &o.Output)

	sh := &o.shape
	f.StringVar(&sh.Name, "name", "", "general.name (default synthetic-ARCH or the preset's)")
	f.IntVar(&sh.Layers, "layers", 0, "transformer blocks")
	f.IntVar(&sh.Embd, "dim", 0, "hidden width (n_embd)")
	f.IntVar(&sh.FF, "ff", 0, "dense FFN width (llama with --experts: each expert's width)")
	f.IntVar(&sh.Heads, "heads", 0, "attention heads")
	f.IntVar(&sh.KVHeads, "kv-heads", 0, "key/value heads (GQA)")
	f.IntVar(&sh.HeadDim, "head-dim", 0, "per-head width (default dim/heads)")
	f.IntVar(&sh.Vocab, "vocab", 0, fmt.Sprintf("vocabulary size (at least %d)", synth.MinVocab))
	f.IntVar(&sh.Ctx, "ctx", 0, "context_length")
	f.Float32Var(&sh.RopeBase, "rope-base", 0, "RoPE frequency base")
	f.BoolVar(&sh.Tied, "tied", false, "no output.weight: the LM head shares token_embd")
	f.IntVar(&sh.Experts, "experts", 0, "routed experts (llama: makes a Mixtral-style MoE)")
	f.IntVar(&sh.ExpertsUsed, "experts-used", 0, "experts per token (top-k; default 2 when --experts is given)")
	f.IntVar(&sh.ExpertFF, "expert-ff", 0, "width of each routed expert (qwen2moe, qwen3moe, deepseek2)")
	f.IntVar(&sh.SharedExperts, "shared-experts", 0, "shared experts (deepseek2)")
	f.IntVar(&sh.SharedFF, "shared-ff", 0, "shared expert width (qwen2moe)")
	f.IntVar(&sh.LeadingDense, "leading-dense", 0, "leading dense layers (deepseek2)")
	f.IntVar(&sh.ExpertGroups, "groups", 0, "expert groups for group-limited routing (deepseek2)")
	f.IntVar(&sh.GroupsUsed, "groups-used", 0, "groups each token routes to (deepseek2)")
	f.IntVar(&sh.QLoraRank, "q-lora", 0, "q compression rank, 0 for none (deepseek2)")
	f.IntVar(&sh.KVLoraRank, "kv-lora", 0, "kv compression rank (deepseek2)")
	f.IntVar(&sh.RopeDim, "rope-dim", 0, "rotary head width qk_rope_head_dim (deepseek2)")
	f.IntVar(&sh.NopeDim, "nope-dim", 0, "non-rotary head width qk_nope_head_dim (deepseek2)")
	f.IntVar(&sh.VHeadDim, "v-dim", 0, "value head width (deepseek2)")
	return cmd
}

func presetList() string {
	var b strings.Builder
	for _, n := range synth.PresetNames() {
		fmt.Fprintf(&b, "  %-14s %s\n", n, synth.PresetHelp(n))
	}
	return b.String()
}

// Complete builds the model config from the preset or architecture and
// the shape flags that were set, and validates it.
func (o *SynthOptions) Complete() error {
	if err := cli.Threads(o.Synth.Threads); err != nil {
		return err
	}
	if o.Out == "" && !o.DryRun {
		return cli.Usage(errors.New("--out FILE is required (or --dry-run to see the size)"))
	}
	var err error
	switch {
	case o.Preset != "":
		if o.cfg, err = synth.Preset(o.Preset); err != nil {
			return cli.Usage(err)
		}
		if o.Arch != "" && o.Arch != o.cfg.Arch {
			return cli.Usage(fmt.Errorf("--preset %s is a %s model; drop --arch %s", o.Preset, o.cfg.Arch, o.Arch))
		}
	case o.Arch != "":
		if o.cfg, err = synth.DefaultConfig(o.Arch); err != nil {
			return cli.Usage(err)
		}
	default:
		return cli.Usage(fmt.Errorf("give --arch (%s) or --preset (%s)", strings.Join(synth.Architectures(), ", "), strings.Join(synth.PresetNames(), ", ")))
	}
	c, sh := &o.cfg, &o.shape
	set := func(name string, dst *int, v int) {
		if o.flags != nil && o.flags.Changed(name) {
			*dst = v
		}
	}
	set("layers", &c.Layers, sh.Layers)
	set("dim", &c.Embd, sh.Embd)
	set("ff", &c.FF, sh.FF)
	set("heads", &c.Heads, sh.Heads)
	set("kv-heads", &c.KVHeads, sh.KVHeads)
	set("head-dim", &c.HeadDim, sh.HeadDim)
	set("vocab", &c.Vocab, sh.Vocab)
	set("ctx", &c.Ctx, sh.Ctx)
	set("experts", &c.Experts, sh.Experts)
	set("experts-used", &c.ExpertsUsed, sh.ExpertsUsed)
	set("expert-ff", &c.ExpertFF, sh.ExpertFF)
	set("shared-experts", &c.SharedExperts, sh.SharedExperts)
	set("shared-ff", &c.SharedFF, sh.SharedFF)
	set("leading-dense", &c.LeadingDense, sh.LeadingDense)
	set("groups", &c.ExpertGroups, sh.ExpertGroups)
	set("groups-used", &c.GroupsUsed, sh.GroupsUsed)
	set("q-lora", &c.QLoraRank, sh.QLoraRank)
	set("kv-lora", &c.KVLoraRank, sh.KVLoraRank)
	set("rope-dim", &c.RopeDim, sh.RopeDim)
	set("nope-dim", &c.NopeDim, sh.NopeDim)
	set("v-dim", &c.VHeadDim, sh.VHeadDim)
	if o.flags != nil {
		if o.flags.Changed("rope-base") {
			c.RopeBase = sh.RopeBase
		}
		if o.flags.Changed("tied") {
			c.Tied = sh.Tied
		}
		if o.flags.Changed("name") {
			c.Name = sh.Name
		}
	}
	if c.Experts > 0 && c.ExpertsUsed == 0 {
		c.ExpertsUsed = min(2, c.Experts)
	}
	if c.Experts == 0 {
		c.ExpertsUsed = 0
	}
	if err := c.Validate(); err != nil {
		return cli.Usage(err)
	}
	_, _, err = synth.Plan(*c, o.Synth)
	return cli.Usage(err)
}

// SynthResult is the JSON shape of `synth -o json`.
type SynthResult struct {
	Path      string       `json:"path"`
	FileBytes int64        `json:"file_bytes"`
	Seconds   float64      `json:"seconds"`
	MBPerSec  float64      `json:"mb_per_s"`
	Config    synth.Config `json:"config"`
	synth.Report
}

// Run writes the model and prints the summary.
func (o *SynthOptions) Run(cmd *cobra.Command, s cli.Streams) error {
	if o.DryRun {
		rep, err := synth.Describe(o.cfg, o.Synth)
		if err != nil {
			return err
		}
		if o.Output == cli.OutputJSON {
			return cli.PrintJSON(s.Out, SynthResult{Path: o.Out, Config: o.cfg, Report: rep})
		}
		fmt.Fprintf(s.Out, "would write %s %s: %s params, %s of tensor data (%.2f bpw)\n", rep.Arch, rep.Type,
			humanCount(rep.Params), bytesize.Format(rep.Bytes), float64(rep.Bytes)*8/float64(max(rep.Params, 1)))
		fmt.Fprintf(s.Out, "tensors: %d (%s)\n", rep.Tensors, typeCounts(rep.TypeCounts))
		return nil
	}
	update, finish := newProgress(s.Err, "synth", o.NoProgress)
	o.Synth.Progress = update
	start := time.Now()
	rep, err := synth.WriteFile(cmd.Context(), o.cfg, o.Synth, o.Out)
	finish()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	st, err := os.Stat(o.Out)
	if err != nil {
		return err
	}
	res := SynthResult{
		Path: o.Out, FileBytes: st.Size(), Seconds: elapsed.Seconds(), MBPerSec: mbPerSec(st.Size(), elapsed),
		Config: o.cfg, Report: rep,
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, res)
	}
	bpw := float64(rep.Bytes) * 8 / float64(max(rep.Params, 1))
	fmt.Fprintf(s.Out, "wrote %s: %s %s, %s params, %s (%.2f bpw), seed %d\n", o.Out, rep.Arch, rep.Type,
		humanCount(rep.Params), bytesize.Format(st.Size()), bpw, rep.Seed)
	fmt.Fprintf(s.Out, "tensors: %d (%s)", rep.Tensors, typeCounts(rep.TypeCounts))
	if rep.Imatrix == "ones" {
		fmt.Fprint(s.Out, ", quantized with an all-ones importance matrix")
	}
	fmt.Fprintf(s.Out, "\ntime: %s (%.1f MB/s)\n", elapsed.Round(time.Millisecond), res.MBPerSec)
	return nil
}

// humanCount formats a parameter count as 3.58M or 6.74B.
func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
