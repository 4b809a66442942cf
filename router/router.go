package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/kernels"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// ErrNoHolder is wrapped when an expert has no live replica and the
// coordinator cannot run it locally; the message names layer and expert.
// It matches experts.ErrUnavailable (errors.Is).
var ErrNoHolder error = noHolderError{}

type noHolderError struct{}

func (noHolderError) Error() string        { return "router: no live holder" }
func (noHolderError) Is(target error) bool { return target == experts.ErrUnavailable }

// Config configures a Router.
type Config struct {
	// Model is the coordinator's expert layout (InfoFromFile); calls carry
	// its fingerprint and nodes serving another model are refused.
	Model ModelInfo
	// Local runs experts in-process when no node holding them is alive,
	// and experts no node holds. Nil when the coordinator has no expert
	// weights (--local-experts=false).
	Local experts.Backend
	// Client is how nodes are dialled (TLS, token, message limits).
	Client rpc.ClientConfig
	// CallTimeout is the deadline of one Forward RPC attempt; on expiry
	// the work goes to another replica.
	CallTimeout time.Duration
	// EjectBase is how long a node that failed a call is ejected from
	// routing before the first health probe; each failed probe (and each
	// new ejection before a successful call) doubles it, up to EjectMax.
	// Ejected nodes get health checks, never live traffic, until one
	// answers SERVING.
	EjectBase, EjectMax time.Duration
	// StatusTimeout bounds the Status call that learns a node's holdings.
	// A node that does not answer in time does not hold up New once the
	// others cover every expert; it is asked again in the background.
	StatusTimeout time.Duration
	// MaxMessageBytes bounds one RPC's request and response; a node's
	// work over it is split into several concurrent calls. It must not
	// exceed the nodes' limit (0: rpc.DefaultMaxMessageBytes).
	MaxMessageBytes int
	// WorkersPerNode bounds the RPCs in flight to one node.
	WorkersPerNode int
	// Logger gets failovers and node state changes.
	Logger *slog.Logger
	// Observer, when set, gets one report per expert call: every RPC
	// attempt (failed ones included) and every local run, and every
	// failover away from a node.
	Observer Observer
}

// Observer receives the router's measurements (metrics). Its methods are
// called from the router's workers concurrently and must not block.
type Observer interface {
	// ExpertCall reports one call: the node ("local" for the
	// coordinator's own experts), its token rows, its latency and error.
	ExpertCall(node string, rows int, d time.Duration, err error)
	// Failover reports that terms of a failed call to node were sent
	// elsewhere.
	Failover(node string, terms int)
	// Ejected reports that node was ejected from routing (ejected true;
	// backoff is the wait before its first health probe) or readmitted
	// after a probe answered SERVING (ejected false, backoff 0).
	Ejected(node string, ejected bool, backoff time.Duration)
}

// LocalNode is the node name under which local expert runs are observed.
const LocalNode = "local"

type nopObserver struct{}

func (nopObserver) ExpertCall(string, int, time.Duration, error) {}
func (nopObserver) Failover(string, int)                         {}
func (nopObserver) Ejected(string, bool, time.Duration)          {}

// DefaultConfig returns the defaults: 10 s per attempt, a failed node
// ejected for 1 s doubling to 30 s, 4 calls in flight per node.
func DefaultConfig() Config {
	return Config{
		Client:          rpc.DefaultClientConfig(),
		CallTimeout:     10 * time.Second,
		EjectBase:       time.Second,
		EjectMax:        30 * time.Second,
		StatusTimeout:   10 * time.Second,
		MaxMessageBytes: rpc.DefaultMaxMessageBytes,
		WorkersPerNode:  4,
	}
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Model.Embd <= 0 || c.Model.Experts <= 0:
		return errors.New("router: the model info has no routed experts")
	case c.CallTimeout <= 0 || c.StatusTimeout <= 0:
		return errors.New("router: CallTimeout and StatusTimeout must be positive")
	case c.EjectBase <= 0 || c.EjectMax < c.EjectBase:
		return fmt.Errorf("router: EjectBase %v must be positive and EjectMax %v not below it", c.EjectBase, c.EjectMax)
	case c.MaxMessageBytes < 0 || c.WorkersPerNode <= 0:
		return errors.New("router: MaxMessageBytes must not be negative and WorkersPerNode must be positive")
	}
	return nil
}

// NodeSpec names an expert node to route to.
type NodeSpec struct {
	// Name identifies the node in logs (default: Addr).
	Name string
	// Addr is the node's gRPC address, host:port.
	Addr string
	// Holdings are the experts the node holds; nil asks the node (Status).
	Holdings Holdings
}

// Router is an experts.Backend that sends each MoE layer's expert work to
// the nodes holding the experts: one RPC per node per layer carrying all
// of that node's rows, concurrently across nodes, with failover to another
// replica (or the local backend) when a node fails or misses its deadline.
// Results are bit-identical to running every expert on one backend: a
// node returns a row's leading run of experts as one sum and the other
// experts as single terms, and the router adds them in the row's order.
//
// A Router is safe for concurrent use by several model runners.
type Router struct {
	cfg   Config
	log   *slog.Logger
	obs   Observer
	nodes []*node
	calls sync.Pool // *call

	// table is the placement; it grows when a node not reached at New
	// answers its Status (join). Calls load it once.
	table    atomic.Pointer[Table]
	mu       sync.Mutex // holdings
	holdings []Holdings // per node; nil: not known yet (pending)

	// bg runs the background goroutines (probes, joins) until Close.
	bg     context.Context
	stopBg context.CancelFunc
	wg     sync.WaitGroup
}

// node is one expert node and its RPC workers.
type node struct {
	name, addr string
	conn       *grpc.ClientConn
	work       chan *chunk
	// ejected: a call failed and health probes have not answered SERVING
	// since; routing skips the node.
	ejected atomic.Bool
	// fails counts ejections and failed probes since the last successful
	// call: the backoff is EjectBase << fails.
	fails   atomic.Int32
	mu      sync.Mutex
	lastErr string
}

func (n *node) up() bool { return !n.ejected.Load() }

// New dials the nodes and asks those without given holdings for their
// Status, in parallel. It returns once every node answered, or a second
// after the nodes that answered cover every expert, or after
// StatusTimeout: a node
// not reached by then is logged and asked again in the background, and
// joins the placement when it answers (Pending lists them). New fails
// when a node answers but serves another model, or cannot be dialled.
// Nodes are used until Close.
func New(ctx context.Context, cfg Config, specs []NodeSpec) (*Router, error) {
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = rpc.DefaultMaxMessageBytes
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Client.MaxRecvBytes == 0 || cfg.Client.MaxRecvBytes < cfg.MaxMessageBytes {
		cfg.Client.MaxRecvBytes = cfg.MaxMessageBytes
	}
	if cfg.Client.MaxSendBytes == 0 || cfg.Client.MaxSendBytes < cfg.MaxMessageBytes {
		cfg.Client.MaxSendBytes = cfg.MaxMessageBytes
	}
	r := &Router{cfg: cfg, log: cfg.Logger, obs: cfg.Observer}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.obs == nil {
		r.obs = nopObserver{}
	}
	r.bg, r.stopBg = context.WithCancel(context.Background())
	r.holdings = make([]Holdings, len(specs))
	for i, sp := range specs {
		if sp.Name == "" {
			sp.Name = sp.Addr
		}
		conn, err := rpc.Dial(sp.Addr, cfg.Client)
		if err != nil {
			r.Close()
			return nil, err
		}
		n := &node{name: sp.Name, addr: sp.Addr, conn: conn, work: make(chan *chunk, cfg.WorkersPerNode)}
		r.nodes = append(r.nodes, n)
		for range cfg.WorkersPerNode {
			go r.worker(n)
		}
		r.holdings[i] = sp.Holdings
	}
	r.table.Store(NewTable(cfg.Model.Layers, cfg.Model.Experts, r.holdings))
	// Ask the nodes without given holdings, all at once.
	first := make(chan error, len(specs))
	asked := 0
	for i := range r.nodes {
		if r.holdings[i] == nil {
			asked++
			r.wg.Add(1)
			go r.join(i, first)
		}
	}
	var grace <-chan time.Time // once the nodes that answered cover every expert
	for asked > 0 {
		select {
		case err := <-first:
			if err != nil {
				r.Close()
				return nil, err
			}
			asked--
		case <-grace:
			asked = 0
		case <-ctx.Done():
			r.Close()
			return nil, ctx.Err()
		}
		if missing, _ := r.table.Load().Coverage(cfg.Model.MoELayers); missing == 0 && grace == nil {
			t := time.NewTimer(min(joinGrace, cfg.StatusTimeout))
			defer t.Stop()
			grace = t.C
		}
	}
	pending := r.Pending()
	if len(pending) > 0 {
		r.log.Warn("expert nodes not reached; starting without them and dialling them in the background", "nodes", pending)
	}
	missing, minRep := r.table.Load().Coverage(cfg.Model.MoELayers)
	r.log.Info("expert placement", "nodes", len(r.nodes), "pending", len(pending), "min_replicas", minRep,
		"unplaced_experts", missing, "local_fallback", cfg.Local != nil)
	if missing > 0 && cfg.Local == nil {
		r.log.Warn("some experts are on no reachable node and local experts are off: calls routed to them fail until a node holding them answers",
			"unplaced_experts", missing, "pending", pending)
	}
	return r, nil
}

// joinGrace is how long New waits for the other nodes' Status once the
// nodes that answered cover every expert.
const joinGrace = time.Second

// join asks node i for its Status until it answers, then adds its
// holdings to the table. The outcome of the first attempt goes to first:
// nil when it answered or is unreachable (asked again after a backoff),
// the error when it answered wrongly (another model), which ends join.
func (r *Router) join(i int, first chan<- error) {
	defer r.wg.Done()
	n := r.nodes[i]
	for attempt := 0; ; attempt++ {
		h, err := r.status(r.bg, n)
		if r.bg.Err() != nil {
			if first != nil {
				first <- nil
			}
			return
		}
		if err == nil {
			r.mu.Lock()
			r.holdings[i] = h
			r.table.Store(NewTable(r.cfg.Model.Layers, r.cfg.Model.Experts, r.holdings))
			r.mu.Unlock()
			if first != nil {
				first <- nil
			} else {
				r.log.Info("expert node reached; routing to it", "node", n.name, "addr", n.addr)
			}
			return
		}
		if !unreachable(err) {
			if first != nil {
				first <- err
			} else {
				r.log.Error("expert node refused; not routing to it", "node", n.name, "addr", n.addr, "err", err)
			}
			return
		}
		if first != nil {
			r.log.Debug("expert node not reached; dialling it again in the background", "node", n.name, "addr", n.addr, "err", err)
			first <- nil
			first = nil
		}
		n.mu.Lock()
		n.lastErr = err.Error()
		n.mu.Unlock()
		if !r.sleep(r.backoff(int32(attempt))) {
			return
		}
	}
}

// unreachable reports whether err means the node did not answer (down,
// hung, refusing connections), as opposed to answering wrongly.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// requestFault reports whether a failed call was refused for what it
// carried (bad input, over a limit) by a node that is otherwise healthy:
// such a node is not ejected.
func requestFault(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.ResourceExhausted, codes.OutOfRange:
		return true
	}
	return false
}

// Pending returns the nodes whose holdings are not known yet: not reached
// at New and still dialled in the background.
func (r *Router) Pending() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p []string
	for i, h := range r.holdings {
		if h == nil {
			p = append(p, r.nodes[i].name)
		}
	}
	return p
}

// backoff returns the ejection time after f earlier failures.
func (r *Router) backoff(f int32) time.Duration {
	d := r.cfg.EjectBase
	for ; f > 0 && d < r.cfg.EjectMax; f-- {
		d *= 2
	}
	return min(d, r.cfg.EjectMax)
}

// sleep waits d, or until Close (false).
func (r *Router) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.bg.Done():
		return false
	}
}

// probe health-checks ejected node n after wait, then after doubling
// waits, until it answers SERVING, and readmits it.
func (r *Router) probe(n *node, wait time.Duration) {
	defer r.wg.Done()
	hc := healthpb.NewHealthClient(n.conn)
	for {
		if !r.sleep(wait) {
			return
		}
		ctx, cancel := context.WithTimeout(r.bg, r.cfg.CallTimeout)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			n.ejected.Store(false)
			r.obs.Ejected(n.name, false, 0)
			r.log.Info("expert node answered its health probe; readmitted to routing", "node", n.name, "addr", n.addr)
			return
		}
		if r.bg.Err() != nil {
			return
		}
		wait = r.backoff(n.fails.Add(1))
		r.log.Debug("expert node health probe failed; still ejected", "node", n.name, "next_probe", wait, "status", resp.GetStatus().String(), "err", err)
	}
}

// status asks node n for its model and holdings.
func (r *Router) status(ctx context.Context, n *node) (Holdings, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StatusTimeout)
	defer cancel()
	st, err := ixv1.NewExpertServiceClient(n.conn).Status(ctx, &ixv1.StatusRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return nil, fmt.Errorf("router: status of node %s: %w", n.name, err)
	}
	if err := r.cfg.Model.checkModel(ctx, ixv1.NewExpertServiceClient(n.conn), st.GetModel()); err != nil {
		return nil, fmt.Errorf("router: node %s %w", n.name, err)
	}
	h, err := HoldingsFromProto(st.GetHeld(), nil)
	if err != nil {
		return nil, fmt.Errorf("router: node %s: %w", n.name, err)
	}
	r.log.Info("expert node", "node", n.name, "addr", n.addr, "id", st.GetNodeId(), "layers_held", len(h))
	return h, nil
}

// Table returns the placement table (it grows when a pending node
// answers).
func (r *Router) Table() *Table { return r.table.Load() }

// Coverage implements experts.CoverageReporter: the experts of MoE layers
// with no replica on a node that is up (reached and not ejected after a
// failure), when there is no local fallback. It allocates nothing and is
// safe for concurrent use.
func (r *Router) Coverage() experts.Coverage {
	var c experts.Coverage
	if r.cfg.Local != nil {
		return c
	}
	t := r.table.Load()
	for _, l := range r.cfg.Model.MoELayers {
	next:
		for e := range r.cfg.Model.Experts {
			for _, n := range t.Replicas(l, e) {
				if r.nodes[n].up() {
					continue next
				}
			}
			if c.Uncovered == 0 {
				c.Layer, c.Expert = l, e
			}
			c.Uncovered++
		}
	}
	return c
}

// Close stops the workers and closes the connections. Calls must have
// returned.
func (r *Router) Close() error {
	if r.stopBg != nil {
		r.stopBg()
		r.wg.Wait()
	}
	var errs []error
	for _, n := range r.nodes {
		close(n.work)
		errs = append(errs, n.conn.Close())
	}
	r.nodes = nil
	return errors.Join(errs...)
}

// worker runs node n's RPCs.
func (r *Router) worker(n *node) {
	for ch := range n.work {
		ctx, cancel := context.WithTimeout(ch.c.ctx, r.cfg.CallTimeout)
		start := time.Now()
		ch.err = n.conn.Invoke(ctx, ixv1.ExpertService_Forward_FullMethodName, &ch.req, &ch.resp)
		d := time.Since(start)
		cancel()
		if want := ch.nGroups * r.cfg.Model.Embd * 4; ch.err == nil && len(ch.resp.Sums) != want {
			ch.err = fmt.Errorf("router: node %s answered %d bytes of sums, want %d", n.name, len(ch.resp.Sums), want)
		}
		if ch.err == nil && n.fails.Load() != 0 {
			n.fails.Store(0) // readmitted and working: the next ejection starts at EjectBase
		}
		r.obs.ExpertCall(n.name, len(ch.req.Rows), d, ch.err)
		ch.c.wg.Done()
	}
}

// Forward implements experts.Backend.
func (r *Router) Forward(ctx context.Context, layer int, b *experts.Batch, out []float32) error {
	p := r.Start(ctx, layer, b, out)
	return p.Wait()
}

// Pending is a Forward in progress (see Start).
type Pending struct {
	c   *call
	err error
}

// Start sends the remote part of a Forward and returns at once, so the
// caller can compute something else (the shared experts) while nodes
// work; Wait computes the local part, handles failover and writes out.
// b and out must stay untouched until Wait returns; Wait must be called
// exactly once.
func (r *Router) Start(ctx context.Context, layer int, b *experts.Batch, out []float32) Pending {
	if err := r.check(layer, b, out); err != nil {
		return Pending{err: err}
	}
	c, _ := r.calls.Get().(*call)
	if c == nil {
		c = &call{r: r}
	}
	c.reset(ctx, layer, b, out)
	if err := c.plan(nil); err != nil {
		c.release()
		return Pending{err: err}
	}
	c.send()
	return Pending{c: c}
}

// Wait finishes the Forward and returns its error.
func (p *Pending) Wait() error {
	if p.c == nil {
		return p.err
	}
	err := p.c.finish()
	p.c.release()
	p.c = nil
	return err
}

// check validates a batch against the model.
func (r *Router) check(layer int, b *experts.Batch, out []float32) error {
	m := &r.cfg.Model
	if !m.IsMoE(layer) {
		return fmt.Errorf("%w: layer %d has no routed experts", experts.ErrUnknownExpert, layer)
	}
	if b.Embd != m.Embd || b.K <= 0 || b.N < 0 || len(b.X) < b.N*b.Embd || len(b.Experts) < b.N*b.K ||
		len(b.Weights) < b.N*b.K || len(out) < b.N*b.Embd {
		return fmt.Errorf("router: batch of %d rows x %d experts, width %d (model %d), or short slices", b.N, b.K, b.Embd, m.Embd)
	}
	if b.Q != nil && len(b.Q) != b.N*kernels.ActivationBytes(b.QType, b.Embd) {
		return fmt.Errorf("router: layer %d: %d bytes of %v activations for %d rows", layer, len(b.Q), b.QType, b.N)
	}
	for _, e := range b.Experts[:b.N*b.K] {
		if e < 0 || int(e) >= m.Experts {
			return fmt.Errorf("%w: layer %d expert %d (the model has %d)", experts.ErrUnknownExpert, layer, e, m.Experts)
		}
	}
	return nil
}

// failed records a failed call to n and ejects it from routing: a probe
// goroutine health-checks it after the backoff and readmits it.
func (r *Router) failed(n *node, layer, rows int, err error) {
	n.mu.Lock()
	n.lastErr = err.Error()
	n.mu.Unlock()
	if requestFault(err) { // the node is healthy: it refused this request
		r.log.Warn("expert node refused the call; failing over to another replica",
			"node", n.name, "addr", n.addr, "layer", layer, "rows", rows, "err", err)
		return
	}
	wasUp := n.ejected.CompareAndSwap(false, true)
	if !wasUp { // a call in flight when it was ejected
		r.log.Warn("expert node call failed; failing over to another replica",
			"node", n.name, "addr", n.addr, "layer", layer, "rows", rows, "was_up", false, "err", err)
		return
	}
	backoff := r.backoff(n.fails.Add(1) - 1)
	r.wg.Add(1)
	go r.probe(n, backoff)
	r.obs.Ejected(n.name, true, backoff)
	r.log.Warn("expert node call failed; failing over to another replica and ejecting the node until it answers a health probe",
		"node", n.name, "addr", n.addr, "layer", layer, "rows", rows, "was_up", true, "first_probe", backoff, "err", err)
}

// noHolder describes why no holder of (layer, e) in table t could be
// used.
func (r *Router) noHolder(t *Table, layer int, e int32) error {
	reps := t.Replicas(layer, int(e))
	if len(reps) == 0 {
		return fmt.Errorf("%w: layer %d expert %d: no node holds it and local experts are off", ErrNoHolder, layer, e)
	}
	var why []string
	for _, i := range reps {
		n := r.nodes[i]
		n.mu.Lock()
		why = append(why, n.name+": "+n.lastErr)
		n.mu.Unlock()
	}
	return fmt.Errorf("%w: layer %d expert %d: every replica failed (%s) and local experts are off",
		ErrNoHolder, layer, e, strings.Join(why, "; "))
}

// wireType returns the wire encoding of b's activations for layer: the
// quantized rows when they are of the type the nodes' kernels take, else
// f32 (from which a node's kernels quantize exactly as the local ones).
func (r *Router) wireType(layer int, b *experts.Batch) gguf.Type {
	if b.Q != nil && b.QType == r.cfg.Model.ActType[layer] {
		return b.QType
	}
	return gguf.TypeF32
}
