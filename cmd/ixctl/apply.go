package main

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// ApplyOptions are the inputs of `ixctl apply`.
type ApplyOptions struct {
	ClusterFlags
	Replicas int
}

func newApplyCmd(s cli.Streams) *cobra.Command {
	o := &ApplyOptions{}
	cmd := &cobra.Command{
		Use:   "apply [--replicas R]",
		Short: "Re-plan placement over the live nodes (optionally with a new R) and carry it out",
		Long: `apply has the coordinator plan placement over the live expert nodes and
move experts to match: new holders load first, routing switches when they are
ready, old holders release. It returns when the new placement is in force and
prints the status. --replicas changes the replication factor.`,
		Example: `  ixctl plan --replicas 3 && ixctl apply --replicas 3`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	cmd.Flags().IntVar(&o.Replicas, "replicas", 0, "replication factor (0: keep the current one)")
	o.addFlags(cmd)
	return cmd
}

// Complete resolves the coordinator.
func (o *ApplyOptions) Complete() error { return o.complete() }

// Validate checks the flags.
func (o *ApplyOptions) Validate() error {
	if o.Replicas < 0 {
		return cli.Usage(errors.New("--replicas must not be negative"))
	}
	return nil
}

// Run applies and prints the status.
func (o *ApplyOptions) Run(ctx context.Context, s cli.Streams) error {
	return o.call(ctx, func(ctx context.Context, c ixv1.AdminServiceClient) error {
		r, err := c.ApplyPlacement(ctx, &ixv1.ApplyPlacementRequest{Replicas: uint32(o.Replicas)}, waitReady)
		if err != nil {
			return err
		}
		return printStatus(s.Out, o.Output, r.GetStatus())
	})
}
