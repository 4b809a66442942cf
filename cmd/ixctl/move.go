package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// MoveOptions are the inputs of `ixctl move`.
type MoveOptions struct {
	ClusterFlags
	Layer, Expert int
	Node          string
}

func newMoveCmd(s cli.Streams) *cobra.Command {
	o := &MoveOptions{}
	cmd := &cobra.Command{
		Use:   "move LAYER:EXPERT NODE",
		Short: "Move one replica of an expert to a node",
		Long: `move loads expert EXPERT of layer LAYER on NODE, switches routing, then has
the most loaded node that held it release it.`,
		Example: `  ixctl move 3:17 expertnode-1`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	o.addFlags(cmd)
	return cmd
}

// Complete parses LAYER:EXPERT and resolves the coordinator.
func (o *MoveOptions) Complete(args []string) error {
	l, e, ok := strings.Cut(args[0], ":")
	var err1, err2 error
	o.Layer, err1 = strconv.Atoi(l)
	o.Expert, err2 = strconv.Atoi(e)
	if !ok || err1 != nil || err2 != nil || o.Layer < 0 || o.Expert < 0 {
		return cli.Usage(fmt.Errorf("%q: want LAYER:EXPERT, e.g. 3:17", args[0]))
	}
	o.Node = args[1]
	return o.complete()
}

// Run moves and prints the status.
func (o *MoveOptions) Run(ctx context.Context, s cli.Streams) error {
	return o.call(ctx, func(ctx context.Context, c ixv1.AdminServiceClient) error {
		r, err := c.MoveExpert(ctx, &ixv1.MoveExpertRequest{Layer: uint32(o.Layer), Expert: uint32(o.Expert), Node: o.Node}, waitReady)
		if err != nil {
			return err
		}
		return printStatus(s.Out, o.Output, r.GetStatus())
	})
}
