package main

import (
	"context"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/inference-x/inference-x/internal/cli"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// NodeOptions are the inputs of `ixctl drain` and `ixctl undrain`: one
// node, and the admin call that acts on it.
type NodeOptions struct {
	ClusterFlags
	Node string
	// call is the admin RPC: DrainNode or UndrainNode.
	call func(ctx context.Context, c ixv1.AdminServiceClient, node string, opts ...grpc.CallOption) (*ixv1.ClusterStatusResponse, error)
}

func newDrainCmd(s cli.Streams) *cobra.Command {
	return newNodeCmd(s, &cobra.Command{
		Use:   "drain NODE",
		Short: "Move every expert off a node so it can be stopped",
		Long: `drain has the coordinator move NODE's experts to the other nodes (they
load first, then routing switches, then NODE releases) and returns when NODE
holds nothing; requests keep being served throughout. Stop the node then.`,
		Example: `  ixctl drain expertnode-2 && kubectl delete pod ix-expertnode-2`,
	}, func(ctx context.Context, c ixv1.AdminServiceClient, node string, opts ...grpc.CallOption) (*ixv1.ClusterStatusResponse, error) {
		r, err := c.DrainNode(ctx, &ixv1.DrainNodeRequest{Node: node}, opts...)
		return r.GetStatus(), err
	})
}

func newUndrainCmd(s cli.Streams) *cobra.Command {
	return newNodeCmd(s, &cobra.Command{
		Use:   "undrain NODE",
		Short: "Let placement give a drained node experts again",
		Long: `undrain ends a drain (as kubectl uncordon): the coordinator plans NODE back
in and returns when the new placement is in force. A node that is not drained
is left as it is. A drain also ends when NODE leaves the cluster or comes back
at another address (a restart), as a deleted Kubernetes node re-registers
schedulable.`,
		Example: `  ixctl undrain expertnode-2`,
	}, func(ctx context.Context, c ixv1.AdminServiceClient, node string, opts ...grpc.CallOption) (*ixv1.ClusterStatusResponse, error) {
		r, err := c.UndrainNode(ctx, &ixv1.UndrainNodeRequest{Node: node}, opts...)
		return r.GetStatus(), err
	})
}

// newNodeCmd completes cmd (its texts set) into a command taking one
// NODE argument that runs call against the coordinator.
func newNodeCmd(s cli.Streams, cmd *cobra.Command, call func(context.Context, ixv1.AdminServiceClient, string, ...grpc.CallOption) (*ixv1.ClusterStatusResponse, error)) *cobra.Command {
	o := &NodeOptions{call: call}
	cmd.Args = cobra.ExactArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		o.Node = args[0]
		if err := o.Complete(); err != nil {
			return err
		}
		return o.Run(cmd.Context(), s)
	}
	o.addFlags(cmd)
	return cmd
}

// Complete resolves the coordinator.
func (o *NodeOptions) Complete() error { return o.complete() }

// Run makes the call and prints the cluster status it returns.
func (o *NodeOptions) Run(ctx context.Context, s cli.Streams) error {
	return o.ClusterFlags.call(ctx, func(ctx context.Context, c ixv1.AdminServiceClient) error {
		st, err := o.call(ctx, c, o.Node, waitReady)
		if err != nil {
			return err
		}
		return printStatus(s.Out, o.Output, st)
	})
}
