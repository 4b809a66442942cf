package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// StatusOptions are the inputs of `ixctl status`.
type StatusOptions struct{ ClusterFlags }

func newStatusCmd(s cli.Streams) *cobra.Command {
	o := &StatusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's expert nodes, what each holds and the replication",
		Long: `status asks the coordinator's admin API for the expert nodes (id, gRPC
address, state: alive, suspect, dead or draining), the experts and bytes each
holds, its load (calls in flight), the replication factor R and how many
(layer, expert) pairs have fewer than R live holders.`,
		Example: `  ixctl status --coordinator 127.0.0.1:7080
  IX_COORDINATOR=10.0.0.5:7080 ixctl status -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
func (o *StatusOptions) Complete() error { return o.complete() }

// Run prints the status.
func (o *StatusOptions) Run(ctx context.Context, s cli.Streams) error {
	return o.call(ctx, func(ctx context.Context, c ixv1.AdminServiceClient) error {
		st, err := c.ClusterStatus(ctx, &ixv1.ClusterStatusRequest{}, waitReady)
		if err != nil {
			return err
		}
		return printStatus(s.Out, o.Output, st)
	})
}
