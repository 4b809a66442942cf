package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/router"
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
	MaxConcurrent   int
	MaxMessageBytes int
	MaxCallTime     time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
	Security        rpc.SecurityFlags
	Cluster         ClusterFlags // gossip.go
}

func newServeCmd(s cli.Streams) *cobra.Command {
	o := &ServeOptions{}
	cmd := &cobra.Command{
		Use:   "expertnode -m MODEL --listen ADDR [--experts SPEC | --placement FILE --node NAME] [flags]",
		Short: "Serve a model's routed experts to coordinators over gRPC",
		Long: `expertnode opens a GGUF model, holds a set of its routed experts and
serves them over gRPC (ix.v1.ExpertService) to one or more coordinators.

--experts SPEC is "all" or comma-separated expert ids and ranges such as
0-127,256-383, held in every MoE layer. A placement file (JSON, see
router.PlacementFile) may instead give per-layer sets; --node picks this
node's entry (default: the --listen address).

Security: --tls-cert/--tls-key turn TLS on; --tls-ca adds mutual TLS (clients
need a certificate signed by it). A shared token (--token-file or
$IX_CLUSTER_TOKEN) is required on every call when set. Without TLS the node
listens on loopback only unless --insecure is given.

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
	f.StringVarP(&o.Model, "model", "m", "", "GGUF model file (or expert shard)")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:7070", "gRPC listen address host:port (port 0: any free port)")
	f.StringVar(&o.Experts, "experts", "", `experts held in every MoE layer: "all" or ranges such as 0-127,256-383 (default all)`)
	f.StringVar(&o.Placement, "placement", "", "placement file (JSON) giving the experts of each node, per layer")
	f.StringVar(&o.Node, "node", "", "this node's name in the placement file (default: --listen)")
	f.StringVar(&o.ID, "id", "", "node id reported in Status (default: hostname:port)")
	f.IntVarP(&o.Threads, "threads", "t", 0, "threads for expert compute (0: one per CPU)")
	f.IntVar(&o.MaxConcurrent, "max-concurrent", 1, "Forward calls computing at once (each uses all threads)")
	f.IntVar(&o.MaxMessageBytes, "max-message-bytes", rpc.DefaultMaxMessageBytes, "largest gRPC message accepted or sent")
	f.DurationVar(&o.MaxCallTime, "max-call-time", time.Minute, "cap on a Forward call that carries no deadline")
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long shutdown waits for in-flight calls")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	o.Security.AddFlags(f, true)
	o.Cluster.AddFlags(f)
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
	return o.Security.Complete()
}

// Validate checks flag combinations.
func (o *ServeOptions) Validate() error {
	switch {
	case o.Model == "":
		return errors.New("no model: give one with -m MODEL.gguf")
	case o.Experts != "" && o.Placement != "":
		return errors.New("give --experts or --placement, not both")
	case o.MaxConcurrent <= 0 || o.MaxMessageBytes <= 0 || o.MaxCallTime <= 0 || o.ShutdownTimeout <= 0:
		return errors.New("--max-concurrent, --max-message-bytes, --max-call-time and --shutdown-timeout must be positive")
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", o.Listen, err)
	}
	return o.Cluster.Validate()
}

// Run opens the model, serves until ctx ends and shuts down.
func (o *ServeOptions) Run(ctx context.Context, s cli.Streams) error {
	log, err := cli.Logger(s.Err, o.LogLevel)
	if err != nil {
		return err
	}
	if err := o.Cluster.BindNUMA(log); err != nil {
		return err
	}
	f, err := gguf.Open(o.Model)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := router.InfoFromFile(f)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Model, err)
	}
	held, err := o.holdings(&info)
	if err != nil {
		return err
	}
	local, err := experts.NewLocal(f, experts.LocalConfig{Threads: o.Threads})
	if err != nil {
		return fmt.Errorf("%s: %w", o.Model, err)
	}
	defer local.Close()

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
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor, cfg.Service.Holdings = o.ID, info, local, held
	cfg.Service.MaxConcurrent, cfg.Service.MaxCallTime, cfg.Service.Logger = o.MaxConcurrent, o.MaxCallTime, log
	cfg.RPC.Security = o.Security.Security
	cfg.RPC.MaxRecvBytes, cfg.RPC.MaxSendBytes = o.MaxMessageBytes, o.MaxMessageBytes
	cfg.ShutdownTimeout = o.ShutdownTimeout
	srv, err := expertnode.New(cfg)
	if err != nil {
		return err
	}
	n := 0
	for _, set := range held {
		n += set.Len()
	}
	log.Info("holding experts", "model", o.Model, "arch", info.Arch, "moe_layers", len(info.MoELayers),
		"experts_per_layer", info.Experts, "held", n, "tls", cfg.RPC.Security.CertFile != "",
		"mtls", cfg.RPC.Security.CAFile != "", "token", cfg.RPC.Security.Token != "")
	return o.Cluster.Serve(ctx, srv, lis, o.ID, log)
}

// holdings resolves --experts or this node's placement entry.
func (o *ServeOptions) holdings(info *router.ModelInfo) (router.Holdings, error) {
	if o.Cluster.StartsEmpty(o.Experts, o.Placement) {
		return router.Holdings{}, nil
	}
	if o.Placement == "" {
		set, err := router.ParseSet(o.Experts, info.Experts)
		if err != nil {
			return nil, fmt.Errorf("--experts: %w", err)
		}
		return router.Uniform(set, info.MoELayers), nil
	}
	p, err := router.ReadPlacementFile(o.Placement)
	if err != nil {
		return nil, err
	}
	n, err := p.Node(o.Node)
	if err != nil {
		return nil, err
	}
	return n.Holdings(info.MoELayers, info.Experts)
}
