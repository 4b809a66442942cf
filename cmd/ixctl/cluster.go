package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/rpc"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// CoordinatorEnv names the coordinator when --coordinator is not given.
const CoordinatorEnv = "IX_COORDINATOR"

// ClusterFlags are the flags every cluster command shares: which
// coordinator's admin API to talk to and how (same TLS and token as the
// cluster).
type ClusterFlags struct {
	Coordinator string
	Timeout     time.Duration
	Security    rpc.SecurityFlags
	Output      cli.Output
}

func (c *ClusterFlags) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.Coordinator, "coordinator", "", "coordinator admin API HOST:PORT (default: $"+CoordinatorEnv+")")
	f.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "how long to wait for the coordinator (changes wait for experts to load)")
	c.Security.AddFlags(f, false)
	cli.AddOutputFlag(cmd, &c.Output)
}

// complete resolves the coordinator and the token.
func (c *ClusterFlags) complete() error {
	if c.Coordinator == "" {
		c.Coordinator = os.Getenv(CoordinatorEnv)
	}
	if c.Coordinator == "" {
		return errors.New("no coordinator: give --coordinator HOST:PORT or set " + CoordinatorEnv)
	}
	if !strings.Contains(c.Coordinator, ":") {
		return fmt.Errorf("--coordinator %q: want HOST:PORT", c.Coordinator)
	}
	return c.Security.Complete()
}

// call dials the coordinator and runs f with its admin client.
func (c *ClusterFlags) call(ctx context.Context, f func(context.Context, ixv1.AdminServiceClient) error) error {
	cfg := rpc.DefaultClientConfig()
	cfg.Security = c.Security.Security
	conn, err := rpc.Dial(c.Coordinator, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	return f(ctx, ixv1.NewAdminServiceClient(conn))
}

// waitReady is the call option of every admin call: wait for the
// connection rather than fail on the first refused dial.
var waitReady = grpc.WaitForReady(true)

// StatusJSON is `ixctl status -o json` (a contract scripts rely on).
type StatusJSON struct {
	Nodes           []NodeJSON `json:"nodes"`
	Replicas        uint32     `json:"replicas"`
	UnderReplicated uint32     `json:"under_replicated"`
	Epoch           uint64     `json:"epoch"`
}

// NodeJSON is one node of StatusJSON.
type NodeJSON struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	State    string `json:"state"` // alive, suspect, dead or draining
	Experts  uint32 `json:"experts"`
	Bytes    uint64 `json:"bytes"`
	Load     uint32 `json:"load"`
	Host     string `json:"host,omitempty"`
	Capacity uint64 `json:"capacity,omitempty"`
}

func stateName(s ixv1.NodeState) string {
	switch s {
	case ixv1.NodeState_NODE_STATE_ALIVE:
		return "alive"
	case ixv1.NodeState_NODE_STATE_SUSPECT:
		return "suspect"
	case ixv1.NodeState_NODE_STATE_DEAD:
		return "dead"
	case ixv1.NodeState_NODE_STATE_DRAINING:
		return "draining"
	}
	return "unknown"
}

func statusJSON(st *ixv1.ClusterStatusResponse) StatusJSON {
	out := StatusJSON{Nodes: []NodeJSON{}, Replicas: st.GetReplicas(), UnderReplicated: st.GetUnderReplicated(), Epoch: st.GetEpoch()}
	for _, n := range st.GetNodes() {
		out.Nodes = append(out.Nodes, NodeJSON{ID: n.GetId(), Address: n.GetAddress(), State: stateName(n.GetState()),
			Experts: n.GetExperts(), Bytes: n.GetBytes(), Load: n.GetLoad(), Host: n.GetHost(), Capacity: n.GetCapacity()})
	}
	return out
}

// printStatus writes the status as a table or JSON.
func printStatus(w io.Writer, o cli.Output, st *ixv1.ClusterStatusResponse) error {
	s := statusJSON(st)
	if o == cli.OutputJSON {
		return cli.PrintJSON(w, s)
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tADDRESS\tSTATE\tEXPERTS\tBYTES\tLOAD")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\n", n.ID, n.Address, n.State, n.Experts, bytesize.Format(int64(n.Bytes)), n.Load)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "replicas %d, under-replicated experts %d, placement epoch %d\n", s.Replicas, s.UnderReplicated, s.Epoch)
	return err
}
