package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/shard"
)

// SplitOptions are the inputs of `ixctl split`.
type SplitOptions struct {
	Model      string
	Plan       string
	Out        string
	NoProgress bool
	Output     cli.Output
}

func newSplitCmd(s cli.Streams) *cobra.Command {
	o := &SplitOptions{}
	cmd := &cobra.Command{
		Use:   "split MODEL --plan FILE --out DIR",
		Short: "Cut a MoE model into a coordinator file and one expert file per node",
		Long: `split writes, from a GGUF MoE model and a placement file (ixctl plan --write,
or written by hand: see expertnode --placement), so that each box downloads
only its part:

  DIR/coordinator.gguf   every tensor but the routed experts (attention,
                         norms, gates, shared experts, embeddings, LM head);
                         the expert tensors are kept with no experts in them
  DIR/NODE.gguf          per node: the model's metadata and, per MoE layer,
                         blk.L.ffn_{gate,up,down}_exps.weight holding only the
                         experts the node is assigned, re-packed as 3-D
                         tensors; ix.shard.experts.L lists their global ids
  DIR/manifest.json      each file's node, size, SHA-256 and experts

Data is streamed tensor by tensor from the mapped model; memory use does not
grow with the model. Run the parts with
  coordinator serve -m DIR/coordinator.gguf --local-experts=false ...
  expertnode -m DIR/NODE.gguf ...     (holds and serves exactly its experts)`,
		Example: `  ixctl plan --write placement.json
  ixctl split kimi-k2.gguf --plan placement.json --out shards/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Model = args[0]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Plan, "plan", "", "placement file (JSON): nodes and the experts each holds")
	f.StringVar(&o.Out, "out", "", "output directory")
	f.BoolVar(&o.NoProgress, "no-progress", false, "no progress bar on stderr")
	cli.AddOutputFlag(cmd, &o.Output)
	return cmd
}

// Validate checks the flags.
func (o *SplitOptions) Validate() error {
	if o.Plan == "" || o.Out == "" {
		return cli.Usage(errors.New("--plan FILE and --out DIR are required"))
	}
	return nil
}

// Run splits the model.
func (o *SplitOptions) Run(ctx context.Context, s cli.Streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	f, err := gguf.Open(o.Model)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := router.ReadPlacementFile(o.Plan)
	if err != nil {
		return err
	}
	update, finish := newProgress(s.Err, "split", o.NoProgress)
	defer finish()
	man, err := shard.Split(ctx, f, shard.SplitConfig{Placement: pf, Out: o.Out, Model: filepath.Base(o.Model), Progress: update})
	if err != nil {
		return fmt.Errorf("%s: %w", o.Model, err)
	}
	finish()
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, man)
	}
	tw := newTable(s.Out)
	fmt.Fprintln(tw, "FILE\tNODE\tTENSORS\tBYTES")
	for _, mf := range append([]shard.File{man.Coordinator}, man.Nodes...) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", mf.File, mf.Node, mf.Tensors, bytesize.Format(mf.Bytes))
	}
	tw.Flush()
	fmt.Fprintf(s.Out, "wrote %s\n", filepath.Join(o.Out, shard.ManifestName))
	return nil
}
