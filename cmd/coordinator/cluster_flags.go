package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/shard"
)

// ClusterOptions connect the coordinator to expert nodes: static wiring
// by --nodes (placement from the nodes' Status) or --placement FILE
// (until membership replaces both).
type ClusterOptions struct {
	Nodes        []string
	Placement    string
	LocalExperts bool
	NodeTimeout  time.Duration
	// EjectBase and EjectMax bound the ejection of a failed node: health
	// probes after EjectBase, doubling up to EjectMax.
	EjectBase, EjectMax time.Duration
	Log                 cli.LogFlags // --cluster-log-level; run adds --log-format
	Security            rpc.SecurityFlags
	// Observer, when set, gets the router's per-call measurements
	// (serve's metrics); not a flag.
	Observer router.Observer
	// StartUncovered starts even when the reachable nodes leave experts
	// uncovered and local experts are off (serve: not ready until a node
	// holding them answers); without it Backend fails naming them (run).
	// Not a flag.
	StartUncovered bool
}

// AddFlags registers the cluster flags on fs.
func (o *ClusterOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.Nodes, "nodes", nil, "expert nodes host:port,... (placement from their Status)")
	fs.StringVar(&o.Placement, "placement", "", "placement file (JSON): the expert nodes and the experts each holds")
	fs.BoolVar(&o.LocalExperts, "local-experts", true, "run experts locally when no node holding them is alive (false: this coordinator has only the dense weights)")
	fs.DurationVar(&o.NodeTimeout, "node-timeout", 10*time.Second, "deadline of one expert call (and of a node's Status at start) before failing over")
	fs.DurationVar(&o.EjectBase, "eject-base", time.Second, "a node whose call failed is ejected from routing and health-probed after this long, doubling per failed probe")
	fs.DurationVar(&o.EjectMax, "eject-max", 30*time.Second, "the longest wait between health probes of an ejected node")
	o.Log.AddLevelFlag(fs, "cluster-log-level", "level of the router's log on stderr (placement, failovers): debug, info, warn or error")
	o.Security.AddFlags(fs, false)
}

// Enabled reports whether expert nodes were given.
func (o *ClusterOptions) Enabled() bool { return len(o.Nodes) > 0 || o.Placement != "" }

// Validate checks the flags and reads the token.
func (o *ClusterOptions) Validate() error {
	if len(o.Nodes) > 0 && o.Placement != "" {
		return cli.Usage(errors.New("give --nodes or --placement, not both"))
	}
	if err := cli.NoEmpty("--nodes", o.Nodes); err != nil {
		return err
	}
	if o.NodeTimeout <= 0 {
		return cli.Usage(fmt.Errorf("--node-timeout %v must be positive", o.NodeTimeout))
	}
	if o.EjectBase <= 0 || o.EjectMax < o.EjectBase {
		return cli.Usage(fmt.Errorf("--eject-base %v must be positive and --eject-max %v not below it", o.EjectBase, o.EjectMax))
	}
	if !o.Enabled() && !o.LocalExperts {
		return cli.Usage(errors.New("--local-experts=false needs expert nodes (--nodes or --placement)"))
	}
	return cli.FlagError(o.Security.Complete())
}

// RunnerOptions returns opt with the expert backend the cluster flags
// ask for: unchanged in single-node mode (the runner computes experts
// itself), otherwise a router over the nodes, with the coordinator's own
// experts as fallback unless --local-experts=false. Router events
// (placement, failovers) are logged to stderr. done releases the backend
// after the runner is closed.
func (o *ClusterOptions) RunnerOptions(ctx context.Context, f *gguf.File, opt model.Options, stderr io.Writer) (_ model.Options, done func(), err error) {
	done = func() {}
	if !o.Enabled() {
		_, err := shard.CheckCoordinator(f, false)
		return opt, done, err
	}
	log, err := o.Log.Logger(stderr)
	if err != nil {
		return opt, done, err
	}
	be, closer, err := o.Backend(ctx, f, opt.Threads, log)
	if err != nil {
		return opt, done, err
	}
	opt.Experts = be
	return opt, func() { closer.Close() }, nil
}

// Backend returns the expert backend for the model in f: nil in
// single-node mode, otherwise a router over the nodes, with the
// coordinator's own experts as fallback unless --local-experts=false. The
// returned closer (never nil without an error) releases it after the
// runners using it are closed.
func (o *ClusterOptions) Backend(ctx context.Context, f *gguf.File, threads int, log *slog.Logger) (experts.Backend, io.Closer, error) {
	if !o.Enabled() {
		return nil, closers{}, nil
	}
	info, err := router.InfoFromFile(f)
	if err != nil {
		return nil, nil, err
	}
	router.LogHashing(log, f.Paths()[0], &info)
	cfg := o.routerConfig(info)
	cfg.Logger = log
	local, err := localExperts(f, o.LocalExperts, threads, log)
	if err != nil {
		return nil, nil, err
	}
	if local != nil {
		cfg.Local = local
	}
	specs, err := o.nodeSpecs(&info)
	if err == nil {
		var r *router.Router
		if r, err = router.New(ctx, cfg, specs); err == nil {
			if err = o.checkCoverage(r, log); err == nil {
				log.Info("routing experts to nodes", "nodes", len(specs), "local_experts", o.LocalExperts)
				return r, closers{r, local}, nil
			}
			r.Close()
		}
	}
	if local != nil {
		local.Close()
	}
	return nil, nil, err
}

// routerConfig returns the router's config from the flags (without the
// logger and local experts).
func (o *ClusterOptions) routerConfig(info router.ModelInfo) router.Config {
	cfg := router.DefaultConfig()
	cfg.Model, cfg.CallTimeout, cfg.Observer = info, o.NodeTimeout, o.Observer
	if o.NodeTimeout > 0 {
		cfg.StatusTimeout = o.NodeTimeout // a node not answering by then is dialled in the background
	}
	if o.EjectBase > 0 { // zero (options built without flags): the defaults
		cfg.EjectBase = o.EjectBase
	}
	if o.EjectMax > 0 {
		cfg.EjectMax = o.EjectMax
	}
	cfg.Client.Security = o.Security.Security
	return cfg
}

// checkCoverage fails when the reachable nodes leave experts uncovered
// (local experts off), naming them and the nodes not reached, unless
// StartUncovered, which logs it: serve starts not ready and becomes ready
// when a node holding them answers.
func (o *ClusterOptions) checkCoverage(r *router.Router, log *slog.Logger) error {
	cov := r.Coverage()
	if cov.Covered() {
		return nil
	}
	pending := strings.Join(r.Pending(), ", ")
	if o.StartUncovered {
		log.Warn("the reachable expert nodes do not cover every expert and local experts are off: not ready until a node holding them answers",
			"uncovered", cov.Uncovered, "first", cov.Reason(), "not_reached", pending)
		return nil
	}
	return fmt.Errorf("%d experts are on no reachable node and --local-experts is off (%s); nodes not reached: %s",
		cov.Uncovered, cov.Reason(), pending)
}

// localExperts returns the coordinator's own experts for the router's
// fallback: nil when want is false or f has no expert weights (a
// coordinator shard written by ixctl split), which is logged.
func localExperts(f *gguf.File, want bool, threads int, log *slog.Logger) (*experts.Local, error) {
	if !want {
		return nil, nil
	}
	if has, _ := shard.CheckCoordinator(f, true); !has {
		log.Info("the model file is a shard without expert weights: no local expert fallback (as --local-experts=false)")
		return nil, nil
	}
	return experts.NewLocal(f, experts.LocalConfig{Threads: threads})
}

// nodeSpecs lists the nodes of --nodes or of the placement file.
func (o *ClusterOptions) nodeSpecs(info *router.ModelInfo) ([]router.NodeSpec, error) {
	var specs []router.NodeSpec
	if o.Placement == "" {
		for _, a := range o.Nodes {
			if a = strings.TrimSpace(a); a != "" {
				specs = append(specs, router.NodeSpec{Addr: a})
			}
		}
		return specs, nil
	}
	p, err := router.ReadPlacementFile(o.Placement)
	if err != nil {
		return nil, err
	}
	for _, n := range p.Nodes {
		h, err := n.Holdings(info.MoELayers, info.Experts)
		if err != nil {
			return nil, err
		}
		specs = append(specs, router.NodeSpec{Name: n.Name, Addr: n.Addr, Holdings: h})
	}
	return specs, nil
}

// closers closes a router, then the local backend it used (either may be
// nil).
type closers struct {
	r     *router.Router
	local *experts.Local
}

func (c closers) Close() error {
	var err error
	if c.r != nil {
		err = c.r.Close()
	}
	if c.local != nil {
		c.local.Close()
	}
	return err
}
