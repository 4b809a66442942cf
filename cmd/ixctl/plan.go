package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

// PlanOptions are the inputs of `ixctl plan`.
type PlanOptions struct {
	ClusterFlags
	Nodes    []string
	Replicas int
	Write    string
}

func newPlanCmd(s cli.Streams) *cobra.Command {
	o := &PlanOptions{}
	cmd := &cobra.Command{
		Use:   "plan [--nodes ID,...] [--replicas R] [--write FILE]",
		Short: "Dry-run a placement for a node set and R, with a movement summary",
		Long: `plan asks the coordinator what placement it would make for a set of nodes
(default: the live ones; unknown ids stand for new, empty nodes) and a
replication factor (default: the current one), starting from what the nodes
hold now. Nothing changes. It prints each node's share and what it would load
and release, and the total bytes moved.

--write FILE saves the placement as a placement file (JSON), the input of
ixctl split --plan and expertnode --placement.`,
		Example: `  ixctl plan --replicas 2
  ixctl plan --nodes node-a,node-b,node-c,node-new -o json
  ixctl plan --write placement.json && ixctl split model.gguf --plan placement.json --out shards/`,
		Args: cobra.NoArgs,
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
	f := cmd.Flags()
	f.StringSliceVar(&o.Nodes, "nodes", nil, "node ids to plan for (default: the live nodes)")
	f.IntVar(&o.Replicas, "replicas", 0, "replication factor (0: the current one)")
	f.StringVar(&o.Write, "write", "", "write the placement to FILE (placement file JSON)")
	o.addFlags(cmd)
	return cmd
}

// Complete resolves the coordinator.
func (o *PlanOptions) Complete() error { return o.complete() }

// Validate checks the flags.
func (o *PlanOptions) Validate() error {
	if o.Replicas < 0 {
		return cli.Usage(errors.New("--replicas must not be negative"))
	}
	return cli.NoEmpty("--nodes", o.Nodes)
}

// PlanJSON is `ixctl plan -o json`.
type PlanJSON struct {
	Nodes           []PlanNodeJSON `json:"nodes"`
	Replicas        uint32         `json:"replicas"`
	UnderReplicated uint32         `json:"under_replicated"`
	ExpertsMoved    uint32         `json:"experts_moved"`
	BytesMoved      uint64         `json:"bytes_moved"`
	ExpertsReleased uint32         `json:"experts_released"`
	BytesReleased   uint64         `json:"bytes_released"`
	// Shortfall says what does not fit (empty when everything does).
	Shortfall string `json:"shortfall,omitempty"`
}

// PlanNodeJSON is one node of PlanJSON.
type PlanNodeJSON struct {
	ID             string `json:"id"`
	Experts        uint32 `json:"experts"`
	Bytes          uint64 `json:"bytes"`
	LoadExperts    uint32 `json:"load_experts"`
	LoadBytes      uint64 `json:"load_bytes"`
	ReleaseExperts uint32 `json:"release_experts"`
	ReleaseBytes   uint64 `json:"release_bytes"`
}

// Run plans and prints.
func (o *PlanOptions) Run(ctx context.Context, s cli.Streams) error {
	return o.call(ctx, func(ctx context.Context, c ixv1.AdminServiceClient) error {
		p, err := c.PlanPlacement(ctx, &ixv1.PlanPlacementRequest{Nodes: o.Nodes, Replicas: uint32(o.Replicas)}, waitReady)
		if err != nil {
			return err
		}
		if o.Write != "" {
			st, err := c.ClusterStatus(ctx, &ixv1.ClusterStatusRequest{}, waitReady)
			if err != nil {
				return err
			}
			if err := writePlacement(o.Write, p, st); err != nil {
				return err
			}
		}
		out := PlanJSON{Nodes: []PlanNodeJSON{}, Replicas: p.GetReplicas(), UnderReplicated: p.GetUnderReplicated(),
			ExpertsMoved: p.GetExpertsMoved(), BytesMoved: p.GetBytesMoved(), ExpertsReleased: p.GetExpertsReleased(), BytesReleased: p.GetBytesReleased(),
			Shortfall: p.GetShortfall()}
		for _, n := range p.GetNodes() {
			out.Nodes = append(out.Nodes, PlanNodeJSON{ID: n.GetId(), Experts: n.GetExperts(), Bytes: n.GetBytes(),
				LoadExperts: n.GetLoadExperts(), LoadBytes: n.GetLoadBytes(), ReleaseExperts: n.GetReleaseExperts(), ReleaseBytes: n.GetReleaseBytes()})
		}
		if o.Output == cli.OutputJSON {
			return cli.PrintJSON(s.Out, out)
		}
		tw := newTable(s.Out)
		fmt.Fprintln(tw, "NODE\tEXPERTS\tBYTES\tLOAD\tRELEASE")
		for _, n := range out.Nodes {
			fmt.Fprintf(tw, "%s\t%d\t%s\t+%d (%s)\t-%d (%s)\n", n.ID, n.Experts, bytesize.Format(int64(n.Bytes)),
				n.LoadExperts, bytesize.Format(int64(n.LoadBytes)), n.ReleaseExperts, bytesize.Format(int64(n.ReleaseBytes)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(s.Out, "replicas %d, under-replicated %d: moves %d experts (%s), releases %d (%s)\n", out.Replicas, out.UnderReplicated,
			out.ExpertsMoved, bytesize.Format(int64(out.BytesMoved)), out.ExpertsReleased, bytesize.Format(int64(out.BytesReleased)))
		if out.Shortfall != "" {
			fmt.Fprintf(s.Out, "shortfall: %s\n", out.Shortfall)
		}
		if o.Write != "" {
			fmt.Fprintf(s.Out, "wrote %s\n", o.Write)
		}
		return nil
	})
}

// writePlacement saves a plan as a placement file: per node, the set of
// each layer.
func writePlacement(path string, p *ixv1.PlanPlacementResponse, st *ixv1.ClusterStatusResponse) error {
	addr := map[string]string{}
	for _, n := range st.GetNodes() {
		addr[n.GetId()] = n.GetAddress()
	}
	var pf router.PlacementFile
	for _, n := range p.GetNodes() {
		if n.GetExperts() == 0 {
			continue
		}
		h, err := router.HoldingsFromProto(n.GetHoldings(), nil)
		if err != nil {
			return err
		}
		pn := router.PlacementNode{Name: n.GetId(), Addr: addr[n.GetId()], Layers: map[string]string{}}
		for l, set := range h {
			pn.Layers[strconv.Itoa(l)] = set.String()
		}
		pf.Nodes = append(pf.Nodes, pn)
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
