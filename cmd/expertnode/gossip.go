package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/numa"
	"github.com/inference-x/inference-x/membership"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// ClusterFlags are the expert node's membership flags: gossip, what the
// node tells the coordinator about itself, and NUMA binding.
type ClusterFlags struct {
	Gossip       membership.Flags
	RPCAdvertise string
	Host         string
	Capacity     string
	NUMANode     int

	capacity int64
	// metaEvery is how often the gossiped load and holdings version are
	// refreshed.
	metaEvery time.Duration
}

// AddFlags registers the flags.
func (c *ClusterFlags) AddFlags(fs *pflag.FlagSet) {
	c.Gossip.AddFlags(fs)
	fs.StringVar(&c.RPCAdvertise, "rpc-advertise", "", "gRPC address the coordinator dials, gossiped (default: --listen, with the gossip address's host when --listen has none)")
	fs.StringVar(&c.Host, "host", "", "machine name gossiped for replica anti-affinity: NUMA nodes of one box share it (default: the hostname)")
	fs.StringVar(&c.Capacity, "capacity", "0", "bytes of experts this node may hold, e.g. 340Gi (binary), 360G (decimal) (0: no limit)")
	fs.IntVar(&c.NUMANode, "numa-node", -1, "bind threads and memory to this NUMA node (-1: no binding)")
}

// Complete reads the gossip key and parses sizes.
func (c *ClusterFlags) Complete() error {
	if err := c.Gossip.Complete(); err != nil {
		return cli.FlagError(err)
	}
	n, err := bytesize.Parse(c.Capacity)
	if err != nil {
		return cli.Usagef("--capacity: %w", err)
	}
	c.capacity = n
	if c.Host == "" {
		c.Host, _ = os.Hostname()
	}
	if c.metaEvery == 0 {
		c.metaEvery = time.Second
	}
	return nil
}

// Validate checks the flags.
func (c *ClusterFlags) Validate() error {
	if c.NUMANode < -1 {
		return cli.Usage(fmt.Errorf("--numa-node %d", c.NUMANode))
	}
	if c.RPCAdvertise != "" {
		if _, _, err := net.SplitHostPort(c.RPCAdvertise); err != nil {
			return cli.Usage(fmt.Errorf("--rpc-advertise %q: %w", c.RPCAdvertise, err))
		}
	}
	return cli.Usage(c.Gossip.Validate())
}

// StartsEmpty reports whether the node starts holding no experts: with
// gossip and neither --experts nor --placement, the coordinator's
// placement decides what it loads.
func (c *ClusterFlags) StartsEmpty(experts, placement string) bool {
	return c.Gossip.Enabled() && experts == "" && placement == ""
}

// BindNUMA binds the process to --numa-node (re-executing it; see
// internal/numa). It returns at once without the flag.
func (c *ClusterFlags) BindNUMA(log *slog.Logger) error {
	if c.NUMANode < 0 {
		return nil
	}
	if err := numa.BindSelf(c.NUMANode); err != nil {
		return err
	}
	cpus, _ := numa.CPUs(c.NUMANode)
	log.Info("bound to NUMA node", "node", c.NUMANode, "cpus", len(cpus))
	return nil
}

// Serve serves srv on lis until ctx ends; with gossip it also joins the
// cluster and keeps its metadata fresh. Shutdown runs in order: the
// service drains (new calls fail over to replicas), gossip leaves (the
// coordinator stops routing here and re-plans), then the gRPC server
// stops gracefully (in-flight calls finish) and finally hard.
func (c *ClusterFlags) Serve(ctx context.Context, srv *expertnode.Server, lis net.Listener, id string, reg prometheus.Registerer, log *slog.Logger) error {
	if !c.Gossip.Enabled() {
		return srv.Serve(ctx, lis)
	}
	meta := membership.Meta{Role: membership.RoleExpert, RPC: c.rpcAddr(lis), Host: c.Host, Capacity: c.capacity}
	c.Gossip.LogSecurity(log)
	cfg := c.Gossip.Config(id, meta)
	cfg.Logger = log.With("component", "gossip")
	cfg.Registerer = reg // ix_gossip_errors_total on --metrics-listen (nil: none)
	if c.NUMANode >= 0 && cfg.Meta.Host == "" {
		cfg.Meta.Host = strconv.Itoa(c.NUMANode)
	}
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(serveCtx, lis) }()
	cl, err := membership.Start(ctx, cfg)
	if err != nil {
		stopServing()
		<-errc
		return err
	}
	t := time.NewTicker(c.metaEvery)
	defer t.Stop()
	for {
		select {
		case err := <-errc:
			cl.Leave(2 * time.Second)
			return err
		case <-ctx.Done():
			srv.Service().Drain()
			if err := cl.Leave(5 * time.Second); err != nil {
				log.Warn("gossip leave", "err", err)
			}
			stopServing()
			return <-errc
		case <-t.C:
			st, err := srv.Service().Status(ctx, &ixv1.StatusRequest{})
			if err != nil {
				continue
			}
			m := cl.Meta()
			m.Epoch, m.Load, m.Draining = st.GetHoldingsVersion(), st.GetInFlight(), !st.GetServing()
			if err := cl.UpdateMeta(m); err != nil {
				log.Warn("gossip metadata update", "err", err)
			}
		}
	}
}

// rpcAddr is the gRPC address to gossip.
func (c *ClusterFlags) rpcAddr(lis net.Listener) string {
	if c.RPCAdvertise != "" {
		return c.RPCAdvertise
	}
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		// Listening on every interface: others reach us where gossip does.
		adv := c.Gossip.Advertise
		if adv == "" {
			adv = c.Gossip.Gossip
		}
		if h, _, err := net.SplitHostPort(adv); err == nil && h != "" && net.ParseIP(h) != nil && !net.ParseIP(h).IsUnspecified() {
			host = h
		} else if h, _ := os.Hostname(); h != "" {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}
