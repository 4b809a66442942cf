package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/pagermetrics"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/shard"
)

// ServeOptions are the inputs of expertnode.
type ServeOptions struct {
	Model           string
	Listen          string
	Experts         string
	Placement       string
	Node            string
	ID              string
	Threads         int
	ExpertMem       string
	MaxConcurrent   int
	MaxPendingCalls int
	MaxExpertUses   int
	MaxMessageBytes int
	MaxCallTime     time.Duration
	ShutdownTimeout time.Duration
	Log             cli.LogFlags
	Security        rpc.SecurityFlags
	Cluster         ClusterFlags // gossip.go
	Probes          ProbeFlags   // probes.go
}

func newServeCmd(s cli.Streams) *cobra.Command {
	o := &ServeOptions{}
	cmd := &cobra.Command{
		Use:   "expertnode -m MODEL --listen ADDR [--experts SPEC | --placement FILE --node NAME] [flags]",
		Short: "Serve a model's routed experts to coordinators over gRPC",
		Long: `expertnode opens a GGUF model, holds a set of its routed experts and
serves them over gRPC (ix.v1.ExpertService) to one or more coordinators.

--experts SPEC is "all" or comma-separated expert ids and ranges such as
0-127,256-383, held in every MoE layer. -m may be the node's shard file
(ixctl split): the node then holds (by default) and can hold only the
experts in it, and tells the coordinator so its placement assigns no
others. A placement file (JSON, see
router.PlacementFile) may instead give per-layer sets; --node picks this
node's entry (default: the --listen address).

Security: --tls-cert/--tls-key turn TLS on; --tls-ca adds mutual TLS (clients
need a certificate signed by it). A shared token (--token-file or
$IX_CLUSTER_TOKEN) is required on every call when set. Without TLS the node
listens on loopback only; off loopback it also needs --tls-ca or a token, and
--gossip off loopback needs a gossip key, unless --insecure is given.

Health: --health-listen (default 127.0.0.1:7079, plaintext: no TLS, no
token) serves the gRPC health service and HTTP GET /livez and /readyz on
one port, for the kubelet's grpc and httpGet probes. Ready means the model
is open, every expert held is mapped (no Load in progress) and the node is
not draining; a node that holds nothing yet is ready. gRPC service "" (and
ix.v1.ExpertService) reports readiness, service "liveness" liveness.
--metrics-listen serves Prometheus /metrics (ix_node_*, ix_pager_* with
--expert-mem, ix_build_info); it may be the health address.

SIGINT/SIGTERM: the node reports NOT_SERVING, finishes in-flight calls (up to
--shutdown-timeout) and exits; a second signal kills it.`,
		Example: `  expertnode -m kimi-k2.gguf --listen 127.0.0.1:7070 --experts 0-191
  expertnode -m kimi-k2.gguf --listen :7070 --placement placement.json --node a \
      --tls-cert node.pem --tls-key node-key.pem --tls-ca ca.pem --token-file token`,
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
	f.StringVarP(&o.Model, "model", "m", "", "GGUF model file, or this node's shard (NODE.gguf from ixctl split)")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:7070", "gRPC listen address host:port (port 0: any free port)")
	f.StringVar(&o.Experts, "experts", "", `experts held in every MoE layer: "all" or ranges such as 0-127,256-383 (default all)`)
	f.StringVar(&o.Placement, "placement", "", "placement file (JSON) giving the experts of each node, per layer")
	f.StringVar(&o.Node, "node", "", "this node's name in the placement file (default: --listen)")
	f.StringVar(&o.ID, "id", "", "node id reported in Status (default: hostname:port)")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads for expert compute (0: one per CPU)")
	f.StringVar(&o.ExpertMem, "expert-mem", "", "budget for resident expert bytes (e.g. 48Gi, 12GiB, 50G): the pager advises MADV_RANDOM at open,\nMADV_WILLNEED on use and evicts (LRFU) past it; empty: plain mmap, the kernel pages on its own")
	f.IntVar(&o.MaxConcurrent, "max-concurrent", 1, "Forward calls computing at once (each uses all threads)")
	f.IntVar(&o.MaxPendingCalls, "max-pending-calls", expertnode.DefaultMaxPendingCalls,
		"calls admitted at once, computing or queued; more are refused (RESOURCE_EXHAUSTED) before their message is read,\nso received messages take at most this times --max-message-bytes")
	f.IntVar(&o.MaxExpertUses, "max-expert-uses", expertnode.DefaultMaxExperts, "largest Forward call in expert uses (rows × their experts); larger ones are refused before computing")
	f.Var(bytesize.NewFlag(&o.MaxMessageBytes, rpc.DefaultMaxMessageBytes), "max-message-bytes", "largest gRPC message accepted or sent, e.g. 64Mi")
	f.DurationVar(&o.MaxCallTime, "max-call-time", time.Minute, "cap on a Forward call that carries no deadline")
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long shutdown waits for in-flight calls")
	o.Log.AddFlags(f)
	o.Security.AddFlags(f, true)
	o.Cluster.AddFlags(f)
	o.Probes.AddFlags(f)
	return cmd
}

// Complete fills defaults and reads the token.
func (o *ServeOptions) Complete() error {
	if err := o.Cluster.Complete(); err != nil {
		return err
	}
	if o.Experts == "" && o.Placement == "" && !o.Cluster.Gossip.Enabled() {
		o.Experts = "all"
	}
	if o.Node == "" {
		o.Node = o.Listen
	}
	o.Probes.Complete()
	return cli.FlagError(o.Security.Complete())
}

// Validate checks flag combinations.
func (o *ServeOptions) Validate() error {
	switch {
	case o.Model == "":
		return cli.Usage(errors.New("no model: give one with -m MODEL.gguf"))
	case o.Experts != "" && o.Placement != "":
		return cli.Usage(errors.New("give --experts or --placement, not both"))
	case o.Threads < 0:
		return cli.Threads(o.Threads)
	case o.MaxConcurrent <= 0 || o.MaxMessageBytes <= 0 || o.MaxCallTime <= 0 || o.ShutdownTimeout <= 0:
		return cli.Usage(errors.New("--max-concurrent, --max-message-bytes, --max-call-time and --shutdown-timeout must be positive"))
	case o.MaxPendingCalls < o.MaxConcurrent || o.MaxExpertUses <= 0:
		return cli.Usage(fmt.Errorf("--max-pending-calls %d must be at least --max-concurrent %d, and --max-expert-uses %d positive",
			o.MaxPendingCalls, o.MaxConcurrent, o.MaxExpertUses))
	}
	if _, err := o.pager(); err != nil {
		return cli.Usage(err)
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return cli.Usage(fmt.Errorf("--listen %q: %w", o.Listen, err))
	}
	if err := o.Probes.Validate(); err != nil {
		return err
	}
	o.Cluster.Gossip.Insecure = o.Security.Security.Insecure // one --insecure for every listener
	return o.Cluster.Validate()
}

// Run opens the model, serves until ctx ends and shuts down.
func (o *ServeOptions) Run(ctx context.Context, s cli.Streams) error {
	log, err := o.Log.Logger(s.Err)
	if err != nil {
		return err
	}
	if err := o.Cluster.BindNUMA(log); err != nil {
		return err
	}
	pager, err := o.pager()
	if err != nil {
		return err
	}
	side, err := o.Probes.start(log) // live, not ready, while the model opens
	if err != nil {
		return err
	}
	defer side.close()
	node, err := shard.OpenNode(o.Model, shard.NodeConfig{Threads: o.Threads, Pager: pager})
	if err != nil {
		return err
	}
	defer node.Close()
	if side.registry != nil && pager != nil {
		side.registry.MustRegister(pagermetrics.New(node.Stats))
	}
	info := node.Info
	log.Info("model opened", "file", o.Model, "file_id", node.File.Identity()[0])
	router.LogHashing(log, o.Model, &info)
	held, err := o.holdings(node)
	if err != nil {
		return err
	}

	cfg := expertnode.DefaultConfig()
	addr, err := rpc.ListenAddress(o.Listen, &o.Security.Security, log)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer lis.Close()
	if o.ID == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(lis.Addr().String())
		o.ID = host + ":" + port
	}
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor, cfg.Service.Holdings = o.ID, info, node.Executor, held
	cfg.Service.Available = node.Available
	cfg.Service.Capacity = o.Cluster.capacity
	cfg.Service.ExpertBytes = router.PlanConfigFromFile(node.File, info).ExpertBytes
	cfg.Service.MaxConcurrent, cfg.Service.MaxCallTime, cfg.Service.Logger = o.MaxConcurrent, o.MaxCallTime, log
	cfg.RPC.Security = o.Security.Security
	cfg.RPC.MaxRecvBytes, cfg.RPC.MaxSendBytes = o.MaxMessageBytes, o.MaxMessageBytes
	cfg.RPC.MaxPendingCalls, cfg.Service.MaxExperts = o.MaxPendingCalls, o.MaxExpertUses
	cfg.ShutdownTimeout = o.ShutdownTimeout
	cfg.FileCheck = node.File.Check
	if side.registry != nil {
		cfg.Metrics = side.registry
	}
	srv, err := expertnode.New(cfg)
	if err != nil {
		return err
	}
	side.attach(srv)
	n := 0
	for _, set := range held {
		n += set.Len()
	}
	log.Info("holding experts", "model", o.Model, "arch", info.Arch, "moe_layers", len(info.MoELayers),
		"experts_per_layer", info.Experts, "held", n, "shard", shardName(node), "tls", cfg.RPC.Security.CertFile != "",
		"mtls", cfg.RPC.Security.CAFile != "", "token", cfg.RPC.Security.Token != "")
	var reg prometheus.Registerer
	if side.registry != nil {
		reg = side.registry
	}
	return o.Cluster.Serve(ctx, srv, lis, o.ID, reg, log)
}

// shardName describes the node's file for the log.
func shardName(n *shard.Node) string {
	if n.Shard == nil {
		return "no (whole model)"
	}
	return n.Shard.Node
}

// holdings resolves --experts or this node's placement entry. A node on
// a shard file holds the shard's experts unless told otherwise (also in
// a gossip cluster, where placement then keeps them where they are).
func (o *ServeOptions) holdings(node *shard.Node) (router.Holdings, error) {
	info := &node.Info
	if node.Shard == nil && o.Cluster.StartsEmpty(o.Experts, o.Placement) {
		return router.Holdings{}, nil
	}
	if o.Placement == "" {
		h, err := node.Holdings(o.Experts)
		if err != nil {
			return nil, fmt.Errorf("--experts: %w", err)
		}
		return h, nil
	}
	p, err := router.ReadPlacementFile(o.Placement)
	if err != nil {
		return nil, err
	}
	n, err := p.Node(o.Node)
	if err != nil {
		return nil, err
	}
	h, err := n.Holdings(info.MoELayers, info.Experts)
	if err != nil {
		return nil, err
	}
	return h, node.CheckHoldings(h)
}

// pager returns the pager configuration --expert-mem asks for, or nil.
// Nodes do not predict the next layer's experts: a coordinator sends a
// node only the rows routed to it, and the next layer's experts may be on
// other nodes.
func (o *ServeOptions) pager() (*experts.PagerConfig, error) {
	if o.ExpertMem == "" {
		return nil, nil
	}
	n, err := bytesize.Parse(o.ExpertMem)
	if err != nil {
		return nil, fmt.Errorf("--expert-mem: %w", err)
	}
	if n <= 0 {
		return nil, fmt.Errorf("--expert-mem %q: want a positive size such as 48Gi", o.ExpertMem)
	}
	cfg := experts.DefaultPagerConfig(n)
	cfg.Predict = false
	return &cfg, nil
}
