package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// DrainOptions are the inputs of `ixctl drain`.
type DrainOptions struct {
	ClusterFlags
	Node string
}

func newDrainCmd(s cli.Streams) *cobra.Command {
	o := &DrainOptions{}
	cmd := &cobra.Command{
		Use:   "drain NODE",
		Short: "Move every expert off a node so it can be stopped",
		Long: `drain has the coordinator move NODE's experts to the other nodes (they
load first, then routing switches, then NODE releases) and returns when NODE
holds nothing; requests keep being served throughout. Stop the node then.`,
		Example: `  ixctl drain expertnode-2 && kubectl delete pod ix-expertnode-2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Node = args[0]
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	o.addFlags(cmd)
	return cmd
}

// Complete resolves the coordinator.
func (o *DrainOptions) Complete() error { return o.complete() }

// Run drains and prints the status.
func (o *DrainOptions) Run(ctx context.Context, s cli.Streams) error {
	return o.call(ctx, func(ctx context.Context, c ixv1.AdminServiceClient) error {
		r, err := c.DrainNode(ctx, &ixv1.DrainNodeRequest{Node: o.Node}, waitReady)
		if err != nil {
			return err
		}
		return printStatus(s.Out, o.Output, r.GetStatus())
	})
}

// UndrainOptions are the inputs of `ixctl undrain`.
type UndrainOptions struct {
	ClusterFlags
	Node string
}

func newUndrainCmd(s cli.Streams) *cobra.Command {
	o := &UndrainOptions{}
	cmd := &cobra.Command{
		Use:   "undrain NODE",
		Short: "Let placement give a drained node experts again",
		Long: `undrain ends a drain (as kubectl uncordon): the coordinator plans NODE back
in and returns when the new placement is in force. A node that is not drained
is left as it is. A drain also ends when NODE leaves the cluster or comes back
at another address (a restart), as a deleted Kubernetes node re-registers
schedulable.`,
		Example: `  ixctl undrain expertnode-2`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Node = args[0]
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	o.addFlags(cmd)
	return cmd
}

// Complete resolves the coordinator.
func (o *UndrainOptions) Complete() error { return o.complete() }

// Run undrains and prints the status.
func (o *UndrainOptions) Run(ctx context.Context, s cli.Streams) error {
	return o.call(ctx, func(ctx context.Context, c ixv1.AdminServiceClient) error {
		r, err := c.UndrainNode(ctx, &ixv1.UndrainNodeRequest{Node: o.Node}, waitReady)
		if err != nil {
			return err
		}
		return printStatus(s.Out, o.Output, r.GetStatus())
	})
}
