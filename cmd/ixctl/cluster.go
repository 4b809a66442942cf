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
	"google.golang.org/grpc/status"

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
	DialTimeout time.Duration
	Security    rpc.SecurityFlags
	Output      cli.Output
}

func (c *ClusterFlags) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.Coordinator, "coordinator", "", "coordinator admin API HOST:PORT (default: $"+CoordinatorEnv+")")
	f.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "how long to wait for the coordinator (changes wait for experts to load)")
	f.DurationVar(&c.DialTimeout, "dial-timeout", 5*time.Second, "how long to try to reach the coordinator before giving up")
	c.Security.AddFlags(f, false)
	cli.AddOutputFlag(cmd, &c.Output)
}

// complete resolves the coordinator and the token.
func (c *ClusterFlags) complete() error {
	if c.Coordinator == "" {
		c.Coordinator = os.Getenv(CoordinatorEnv)
	}
	if c.Coordinator == "" {
		return cli.Usage(errors.New("no coordinator: give --coordinator HOST:PORT or set " + CoordinatorEnv))
	}
	if !strings.Contains(c.Coordinator, ":") {
		return cli.Usagef("--coordinator %q: want HOST:PORT", c.Coordinator)
	}
	if c.DialTimeout <= 0 {
		return cli.Usagef("--dial-timeout %v must be positive", c.DialTimeout)
	}
	return cli.FlagError(c.Security.Complete())
}

// call dials the coordinator and runs f with its admin client. It gives
// up after --dial-timeout when the coordinator cannot be reached, rather
// than after --timeout (calls wait for a connection).
func (c *ClusterFlags) call(ctx context.Context, f func(context.Context, ixv1.AdminServiceClient) error) error {
	cfg := rpc.DefaultClientConfig()
	cfg.Security = c.Security.Security
	conn, err := rpc.Dial(c.Coordinator, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	dctx, dcancel := context.WithTimeout(ctx, c.DialTimeout)
	err = rpc.Reach(dctx, conn)
	dcancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{Addr: c.Coordinator, Within: c.DialTimeout, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	return f(ctx, ixv1.NewAdminServiceClient(conn))
}

// UnreachableError is the error of a coordinator that did not answer
// within --dial-timeout.
type UnreachableError struct {
	Addr   string
	Within time.Duration
	Err    error // the last connection failure
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the coordinator at %s within %v: %s; check that it runs, that --coordinator (or $%s) is its admin API address, and that the TLS flags and token are the cluster's",
		e.Addr, e.Within, e.reason(), CoordinatorEnv)
}

// reason is the connection failure without gRPC's layers of prefixes:
// "dial tcp 127.0.0.1:7080: connect: connection refused".
func (e *UnreachableError) reason() string {
	msg := status.Convert(e.Err).Message()
	if i := strings.LastIndex(msg, "desc = "); i >= 0 {
		msg = strings.Trim(msg[i+len("desc = "):], `"`)
	}
	msg = strings.TrimPrefix(msg, "transport: ")
	msg = strings.TrimPrefix(msg, "Error while dialing: ")
	if msg == context.DeadlineExceeded.Error() {
		return "no answer"
	}
	return msg
}

func (e *UnreachableError) Unwrap() error { return e.Err }

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
