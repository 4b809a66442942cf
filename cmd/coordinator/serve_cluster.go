package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/admin"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/membership"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/shard"
)

// ServeClusterOptions are `coordinator serve`'s cluster flags: static
// expert nodes (ClusterOptions: --nodes, --placement, TLS, token) or a
// gossip cluster (--gossip, --join) whose placement the coordinator plans
// and rebalances itself with --replicas, steered through the admin API
// (--admin).
type ServeClusterOptions struct {
	Static   ClusterOptions
	Gossip   membership.Flags
	Admin    string
	Replicas int
	// Rescan is how often membership is reconciled even without a change
	// (retries failed loads).
	Rescan time.Duration
	ID     string
	// Registerer gets the gossip metrics (ix_gossip_errors_total); serve
	// sets it to its /metrics registry.
	Registerer prometheus.Registerer
}

// AddFlags registers the flags.
func (o *ServeClusterOptions) AddFlags(fs *pflag.FlagSet) {
	o.Static.AddFlags(fs)
	o.Gossip.AddFlags(fs)
	fs.StringVar(&o.Admin, "admin", "", "serve the admin gRPC API (ixctl) on HOST:PORT; needs --gossip")
	fs.IntVar(&o.Replicas, "replicas", 2, "replication factor R: expert nodes holding each expert (gossip clusters)")
	fs.DurationVar(&o.Rescan, "rebalance-interval", 30*time.Second, "reconcile placement with membership at least this often")
	fs.StringVar(&o.ID, "cluster-id", "", "this coordinator's gossip member name (default: coordinator-HOSTNAME)")
}

// Validate checks the flags and reads the token and gossip key.
func (o *ServeClusterOptions) Validate() error {
	if err := o.Gossip.Complete(); err != nil {
		return cli.FlagError(err)
	}
	o.Gossip.Insecure = o.Static.Security.Security.Insecure
	if err := o.Gossip.Validate(); err != nil {
		return cli.Usage(err)
	}
	if o.Gossip.Enabled() && o.Static.Enabled() {
		return cli.Usage(errors.New("give --gossip or --nodes/--placement, not both"))
	}
	if o.Admin != "" && !o.Gossip.Enabled() {
		return cli.Usage(errors.New("--admin needs --gossip: the admin API steers a gossip cluster"))
	}
	if o.Replicas < 1 {
		return cli.Usage(fmt.Errorf("--replicas %d must be at least 1", o.Replicas))
	}
	if o.Rescan <= 0 {
		return cli.Usage(fmt.Errorf("--rebalance-interval %v must be positive", o.Rescan))
	}
	if o.ID == "" {
		h, _ := os.Hostname()
		o.ID = "coordinator-" + h
	}
	if o.Gossip.Enabled() {
		// ClusterOptions.Validate insists on nodes for --local-experts=false.
		return cli.FlagError(o.Static.Security.Complete())
	}
	return o.Static.Validate()
}

// Enabled reports whether experts run anywhere but in-process.
func (o *ServeClusterOptions) Enabled() bool { return o.Gossip.Enabled() || o.Static.Enabled() }

// serveCluster is a running cluster side of `coordinator serve`.
type serveCluster struct {
	log     *slog.Logger
	backend experts.Backend
	closer  io.Closer
	mgr     *router.Manager
	members *membership.Cluster
	admin   *rpc.Server
	adminLn net.Listener
	done    chan struct{}
	cancel  context.CancelFunc
}

// StartCluster starts what the flags ask for and returns the expert
// backend for the scheduler (nil in single-node mode) and a stop function
// that shuts the cluster side down in order: admin API NOT_SERVING,
// gossip Leave, admin GracefulStop (bounded by grace), then the router.
func (o *ServeClusterOptions) StartCluster(ctx context.Context, f *gguf.File, threads int, log *slog.Logger) (experts.Backend, func(grace time.Duration), error) {
	if !o.Enabled() {
		if _, err := shard.CheckCoordinator(f, false); err != nil {
			return nil, nil, err
		}
		return nil, func(time.Duration) {}, nil
	}
	if o.Static.Enabled() {
		o.Static.StartUncovered = true // not ready (503 after --wait-ready) until a node holding them answers
		be, closer, err := o.Static.Backend(ctx, f, threads, log)
		if err != nil {
			return nil, nil, err
		}
		return be, func(time.Duration) { closer.Close() }, nil
	}
	sc, err := o.startGossip(ctx, f, threads, log)
	if err != nil {
		return nil, nil, err
	}
	return sc.backend, sc.stop, nil
}

func (o *ServeClusterOptions) startGossip(ctx context.Context, f *gguf.File, threads int, log *slog.Logger) (*serveCluster, error) {
	info, err := router.InfoFromFile(f)
	if err != nil {
		return nil, err
	}
	router.LogHashing(log, f.Paths()[0], &info)
	rc := o.Static.routerConfig(info)
	local, err := localExperts(f, o.Static.LocalExperts, threads, log)
	if err != nil {
		return nil, err
	}
	if local != nil {
		rc.Local = local
	}
	pc := router.PlanConfigFromFile(f, info)
	pc.Replicas = o.Replicas
	mgr, err := router.NewManager(router.ManagerConfig{Router: rc, Plan: pc, Logger: log.With("component", "placement")})
	if err != nil {
		if local != nil {
			local.Close()
		}
		return nil, err
	}
	sc := &serveCluster{log: log, mgr: mgr, backend: mgr.Backend(), done: make(chan struct{})}
	sc.closer = closerFunc(func() error {
		err := mgr.Close()
		if local != nil {
			local.Close()
		}
		return err
	})
	meta := membership.Meta{Role: membership.RoleCoordinator}
	if o.Admin != "" {
		if err := sc.startAdmin(o, log); err != nil {
			sc.closer.Close()
			return nil, err
		}
		meta.RPC = sc.adminLn.Addr().String()
	}
	o.Gossip.LogSecurity(log)
	cfg := o.Gossip.Config(o.ID, meta)
	cfg.Logger = log.With("component", "gossip")
	cfg.Registerer = o.Registerer
	cl, err := membership.Start(ctx, cfg)
	if err != nil {
		sc.stop(0)
		return nil, err
	}
	sc.members = cl
	rctx, cancel := context.WithCancel(context.Background())
	sc.cancel = cancel
	go sc.reconcileLoop(rctx, o.Rescan)
	log.Info("cluster mode: gossip", "gossip", cl.Addr(), "admin", meta.RPC, "replicas", o.Replicas,
		"moe_layers", len(info.MoELayers), "experts", info.Experts)
	return sc, nil
}

func (sc *serveCluster) startAdmin(o *ServeClusterOptions, log *slog.Logger) error {
	sec := o.Static.Security.Security // the coordinator's certificate serves the admin API too
	addr, err := rpc.ListenAddress(o.Admin, &sec, log)
	if err != nil {
		return err
	}
	srv, err := rpc.NewServer(admin.ServerConfig(sec, log))
	if err != nil {
		return err
	}
	ixv1.RegisterAdminServiceServer(srv.GRPC, admin.NewService(sc.mgr, func() []membership.Member {
		if sc.members == nil {
			return nil
		}
		return sc.members.Members()
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv.SetServing("", true)
	srv.SetServing(ixv1.AdminService_ServiceDesc.ServiceName, true)
	sc.admin, sc.adminLn = srv, ln
	go srv.GRPC.Serve(ln)
	return nil
}

// reconcileLoop feeds membership changes to the placement manager.
func (sc *serveCluster) reconcileLoop(ctx context.Context, every time.Duration) {
	defer close(sc.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var members []router.Member
		for _, m := range sc.members.Alive(membership.RoleExpert) {
			members = append(members, router.Member{ID: m.Name, Addr: m.Meta.RPC, Host: m.Meta.Host,
				Capacity: m.Meta.Capacity, Load: m.Meta.Load, Draining: m.Meta.Draining})
		}
		if err := sc.mgr.Update(ctx, members); err != nil && ctx.Err() == nil {
			sc.log.Warn("placement change incomplete; retrying on the next change", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-sc.members.Changed():
		case <-t.C:
		}
	}
}

// stop shuts the cluster side down in order.
func (sc *serveCluster) stop(grace time.Duration) {
	if sc.admin != nil {
		sc.admin.SetServing("", false)
		sc.admin.SetServing(ixv1.AdminService_ServiceDesc.ServiceName, false)
	}
	if sc.members != nil {
		sc.members.Leave(5 * time.Second)
	}
	if sc.cancel != nil {
		sc.cancel()
		<-sc.done
	}
	if sc.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		sc.admin.Shutdown(ctx)
		cancel()
	}
	sc.closer.Close()
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
