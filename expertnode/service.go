package expertnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/kernels"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

// Executor computes the node's experts in-process: experts.Local over the
// mmapped model today, the pager (issue 8) later. It follows the
// experts.Backend contract; the service calls it from at most
// Config.MaxConcurrent goroutines at once, with K up to the largest group
// a caller asks for.
type Executor = experts.Backend

// Resident is implemented by executors that manage which experts are in
// memory (the pager). Load returns once the experts are resident; Release
// may evict them. Both may be called concurrently with Forward.
type Resident interface {
	Load(ctx context.Context, layer int, ids []int) error
	Release(ctx context.Context, layer int, ids []int) error
}

// ServiceConfig configures the expert service.
type ServiceConfig struct {
	// NodeID names the node in Status and logs.
	NodeID string
	// Model is the model's expert layout (router.InfoFromFile).
	Model router.ModelInfo
	// Executor runs the experts.
	Executor Executor
	// Holdings are the experts held at start.
	Holdings router.Holdings
	// Available, when not nil, is every expert the executor can hold (a
	// shard file's); Load refuses others and Status reports it, so
	// placement assigns the node none of them. Nil: any expert.
	Available router.Holdings
	// Capacity, when positive, bounds the bytes of the experts held, with
	// ExpertBytes[l] the size of one expert of layer l
	// (router.PlanConfigFromFile): a Load past it fails with ErrNoRoom.
	Capacity    int64
	ExpertBytes []int64
	// MaxConcurrent bounds the Forward calls computing at once; more wait
	// (within their deadline). The executor parallelises one call over
	// the cores, so the default is 1.
	MaxConcurrent int
	// MaxRows bounds the rows of one Forward call.
	MaxRows int
	// MaxExperts bounds the expert uses of one Forward call: the experts
	// of all its rows, what its compute is proportional to (0:
	// DefaultMaxExperts).
	MaxExperts int
	// MaxResponseBytes is the send limit (the gRPC server's
	// MaxSendBytes; New sets it): a call whose response would be larger
	// is refused before it is computed (0: rpc.DefaultMaxMessageBytes).
	MaxResponseBytes int
	// MaxCallTime caps a Forward call that carries no deadline.
	MaxCallTime time.Duration
	// Logger gets the service's events.
	Logger *slog.Logger
}

// DefaultMaxExperts is the default bound on a Forward call's expert uses:
// router.MaxCallExperts, what a coordinator sends at most (4096 rows of
// 16 experts).
const DefaultMaxExperts = router.MaxCallExperts

// DefaultServiceConfig returns the defaults: one call at a time, 4096
// rows (router.MaxCallRows) and DefaultMaxExperts expert uses per call,
// 60 s without a caller deadline.
func DefaultServiceConfig() ServiceConfig {
	return ServiceConfig{MaxConcurrent: 1, MaxRows: router.MaxCallRows, MaxExperts: DefaultMaxExperts, MaxCallTime: time.Minute}
}

// Validate checks the config.
func (c *ServiceConfig) Validate() error {
	switch {
	case c.Executor == nil:
		return errors.New("expertnode: no executor")
	case c.Model.Embd <= 0 || c.Model.Experts <= 0 || len(c.Model.MoELayers) == 0:
		return errors.New("expertnode: the model info has no routed experts")
	case c.MaxConcurrent <= 0 || c.MaxRows <= 0 || c.MaxCallTime <= 0:
		return fmt.Errorf("expertnode: MaxConcurrent %d, MaxRows %d and MaxCallTime %v must be positive",
			c.MaxConcurrent, c.MaxRows, c.MaxCallTime)
	case c.MaxExperts < 0 || c.MaxResponseBytes < 0:
		return fmt.Errorf("expertnode: MaxExperts %d and MaxResponseBytes %d must not be negative", c.MaxExperts, c.MaxResponseBytes)
	}
	for l, s := range c.Holdings {
		if !c.Model.IsMoE(l) {
			return fmt.Errorf("%w: layer %d holds experts", ErrUnknownLayer, l)
		}
		if s.Max() >= c.Model.Experts {
			return fmt.Errorf("%w: layer %d holds expert %d of %d", experts.ErrUnknownExpert, l, s.Max(), c.Model.Experts)
		}
		if err := c.checkAvailable(l, s); err != nil {
			return err
		}
	}
	if c.Capacity > 0 && len(c.ExpertBytes) == 0 {
		return errors.New("expertnode: a capacity without expert sizes")
	}
	return c.checkRoom(c.Holdings)
}

// bytes returns the bytes of the experts in h.
func (c *ServiceConfig) bytes(h router.Holdings) int64 {
	var n int64
	for l, s := range h {
		if l >= 0 && l < len(c.ExpertBytes) && s != nil {
			n += int64(s.Len()) * c.ExpertBytes[l]
		}
	}
	return n
}

// checkRoom returns an error wrapping ErrNoRoom when holding h exceeds
// the capacity.
func (c *ServiceConfig) checkRoom(h router.Holdings) error {
	if c.Capacity <= 0 {
		return nil
	}
	if b := c.bytes(h); b > c.Capacity {
		return fmt.Errorf("%w: the experts would take %s of the node's %s capacity (%s short)", ErrNoRoom,
			bytesize.Format(b), bytesize.Format(c.Capacity), bytesize.Format(b-c.Capacity))
	}
	return nil
}

// checkAvailable returns an error wrapping ErrNotAvailable naming the
// first expert of set that layer l cannot hold.
func (c *ServiceConfig) checkAvailable(l int, set *router.Set) error {
	if c.Available == nil || set == nil {
		return nil
	}
	for _, r := range set.Ranges() {
		for e := r[0]; e <= r[1]; e++ {
			if !c.Available.Has(l, e) {
				avail := "none"
				if a := c.Available[l]; a != nil && a.Len() > 0 {
					avail = a.String()
				}
				return fmt.Errorf("%w: layer %d expert %d (this node's file has %s of layer %d)", ErrNotAvailable, l, e, avail, l)
			}
		}
	}
	return nil
}

// Service implements ixv1.ExpertServiceServer. It is safe for concurrent
// use: several coordinators may call one node.
type Service struct {
	ixv1.UnimplementedExpertServiceServer

	cfg ServiceConfig
	log *slog.Logger
	sem chan struct{}

	mu      sync.Mutex // serialises holdings changes
	held    atomic.Pointer[router.Holdings]
	version atomic.Uint64

	calls, rows atomic.Uint64
	inFlight    atomic.Int32
	draining    atomic.Bool
	loading     atomic.Int32 // Load calls between validation and publication
	changes     notifier     // readiness changes: drain, Load start and end

	scratch sync.Pool // *scratch
	reclaim reclaimer // limits.go
}

// NewService makes the service.
func NewService(cfg ServiceConfig) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, cfg.MaxConcurrent)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	h := router.Holdings{}
	for l, set := range cfg.Holdings {
		c := set.Clone()
		h[l] = &c
	}
	s.held.Store(&h)
	s.version.Store(1)
	return s, nil
}

// Drain marks the service as shutting down: Status says so and new
// Forward calls fail with UNAVAILABLE (callers go to another replica)
// while calls already running finish.
func (s *Service) Drain() {
	s.draining.Store(true)
	s.changes.notify()
}

// unready returns why the service cannot serve everything it holds, or
// "" when it can: it is draining, or a Load is mapping experts it is to
// serve.
func (s *Service) unready() string {
	if s.draining.Load() {
		return "draining: shutting down"
	}
	if n := s.loading.Load(); n > 0 {
		return fmt.Sprintf("loading experts (%d Load calls in progress)", n)
	}
	return ""
}

// InFlight returns the number of Forward calls running.
func (s *Service) InFlight() int { return int(s.inFlight.Load()) }

// Holdings returns a snapshot of the experts held (do not modify).
func (s *Service) Holdings() router.Holdings { return *s.held.Load() }

// scratch is the reusable memory of one Forward call.
type scratch struct {
	x       []float32 // request rows decoded to f32
	q       []byte    // request rows as sent (quantized types)
	experts []int32   // every row's expert ids
	groups  []router.Group
	out     []float32 // the groups' sums
	grouper router.Grouper
}

// Forward validates the call, runs the executor once per distinct group
// size and returns the sums.
func (s *Service) Forward(ctx context.Context, req *ixv1.ForwardRequest) (*ixv1.ForwardResponse, error) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if s.draining.Load() {
		return nil, fmt.Errorf("%w: node %s is draining", ErrShuttingDown, s.cfg.NodeID)
	}
	sc, _ := s.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	defer s.scratch.Put(sc)
	defer s.reclaimAfter(req)
	if err := s.checkCost(req); err != nil {
		return nil, err
	}
	at, err := s.validate(req, sc)
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.MaxCallTime)
		defer cancel()
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("expertnode: waiting for a compute slot: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	// The server's codec gives Sums back to the pool once it is sent.
	resp := &ixv1.ForwardResponse{Sums: rpc.GetSums(len(sc.groups) * s.cfg.Model.Embd * 4)}
	if err := s.compute(ctx, int(req.GetLayer()), at, req, sc, resp.Sums); err != nil {
		rpc.PutSums(resp.Sums)
		return nil, err
	}
	s.calls.Add(1)
	s.rows.Add(uint64(len(req.GetRows())))
	return resp, nil
}

// validate checks every field of req against the model and the holdings
// and fills sc.groups; it returns the activation type.
func (s *Service) validate(req *ixv1.ForwardRequest, sc *scratch) (gguf.Type, error) {
	m := &s.cfg.Model
	if fp := req.GetModelFingerprint(); fp != "" && fp != m.Fingerprint {
		return 0, fmt.Errorf("%w: caller %s, node %s", ErrModelMismatch, fp, m.Fingerprint)
	}
	layer := int(req.GetLayer())
	if !m.IsMoE(layer) {
		return 0, fmt.Errorf("%w: layer %d (MoE layers: %d of %d)", ErrUnknownLayer, layer, len(m.MoELayers), m.Layers)
	}
	at, ok := rpc.GGMLType(req.GetActivationType())
	if !ok || (at != gguf.TypeF32 && at != m.ActType[layer]) {
		return 0, fmt.Errorf("%w: activation type %v for layer %d (want F32 or %v)", ErrBadRequest, req.GetActivationType(), layer, m.ActType[layer])
	}
	rows := req.GetRows()
	if len(rows) == 0 || len(rows) > s.cfg.MaxRows {
		return 0, fmt.Errorf("%w: %d rows (want 1 to %d)", ErrBadRequest, len(rows), s.cfg.MaxRows)
	}
	rowBytes := kernels.ActivationBytes(at, m.Embd)
	held := s.held.Load()
	hl := (*held)[layer]
	total := 0
	for _, r := range rows {
		total += len(r.GetExperts())
	}
	if cap(sc.experts) < total { // groups alias sc.experts: no growth below
		sc.experts = make([]int32, 0, total)
	}
	sc.groups, sc.experts = sc.groups[:0], sc.experts[:0]
	for i, r := range rows {
		if len(r.GetActivation()) != rowBytes {
			return 0, fmt.Errorf("%w: row %d: activation of %d bytes, want %d (%d values as %v)", ErrBadRequest, i, len(r.GetActivation()), rowBytes, m.Embd, at)
		}
		if !finiteActivation(at, r.GetActivation()) {
			return 0, fmt.Errorf("%w: row %d: activation holds NaN or infinity", ErrBadRequest, i)
		}
		ex, w := r.GetExperts(), r.GetWeights()
		if len(ex) == 0 || len(ex) != len(w) || len(ex) > m.Experts {
			return 0, fmt.Errorf("%w: row %d: %d experts and %d weights", ErrBadRequest, i, len(ex), len(w))
		}
		for _, e := range ex {
			if int(e) >= m.Experts {
				return 0, fmt.Errorf("%w: layer %d expert %d (the model has %d)", experts.ErrUnknownExpert, layer, e, m.Experts)
			}
			if hl == nil || !hl.Has(int(e)) {
				if err := s.cfg.checkAvailable(layer, oneExpert(int(e))); err != nil {
					return 0, err
				}
				return 0, fmt.Errorf("%w: layer %d expert %d", ErrNotHeld, layer, e)
			}
		}
		for _, v := range w {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, fmt.Errorf("%w: row %d: weight %v", ErrBadRequest, i, v)
			}
		}
		first := len(sc.experts)
		for _, e := range ex {
			sc.experts = append(sc.experts, int32(e))
		}
		ids := sc.experts[first:]
		gs := r.GetGroupSizes()
		if len(gs) == 0 {
			sc.groups = append(sc.groups, router.Group{Row: i, Experts: ids, Weights: w})
			continue
		}
		start := 0
		for _, g := range gs {
			if g == 0 || start+int(g) > len(ex) {
				return 0, fmt.Errorf("%w: row %d: group sizes %v do not split %d experts", ErrBadRequest, i, gs, len(ex))
			}
			end := start + int(g)
			sc.groups = append(sc.groups, router.Group{Row: i, Experts: ids[start:end], Weights: w[start:end]})
			start = end
		}
		if start != len(ex) {
			return 0, fmt.Errorf("%w: row %d: group sizes %v do not split %d experts", ErrBadRequest, i, gs, len(ex))
		}
	}
	return at, nil
}

// compute decodes the rows and runs the groups on the executor, writing
// each group's sum into sums.
func (s *Service) compute(ctx context.Context, layer int, at gguf.Type, req *ixv1.ForwardRequest, sc *scratch, sums []byte) error {
	embd := s.cfg.Model.Embd
	rows := req.GetRows()
	sc.x = grow(sc.x, len(rows)*embd)
	sc.q = sc.q[:0]
	for i, r := range rows {
		x := sc.x[i*embd : (i+1)*embd]
		if at == gguf.TypeF32 {
			rpc.Floats(x, r.GetActivation())
			continue
		}
		sc.q = append(sc.q, r.GetActivation()...)
		if err := kernels.DequantizeRow(at, x, r.GetActivation()); err != nil {
			clear(x) // Q8_1 has no dequantizer: the executor uses the quantized row
		}
	}
	q := sc.q
	if at == gguf.TypeF32 {
		q = nil
	}
	sc.out = grow(sc.out, len(sc.groups)*embd)
	if err := sc.grouper.Run(ctx, s.cfg.Executor, layer, embd, sc.x, q, at, sc.groups, sc.out); err != nil {
		return fmt.Errorf("expertnode: layer %d: %w", layer, err)
	}
	rpc.PutFloats(sums, sc.out)
	return nil
}

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// Load adds experts to the holdings once the executor has them resident.
func (s *Service) Load(ctx context.Context, req *ixv1.LoadRequest) (*ixv1.LoadResponse, error) {
	if fp := req.GetModelFingerprint(); fp != "" && fp != s.cfg.Model.Fingerprint {
		return nil, fmt.Errorf("%w: caller %s, node %s", ErrModelMismatch, fp, s.cfg.Model.Fingerprint)
	}
	add, err := router.HoldingsFromProto(req.GetExperts(), s.checkRange)
	if err != nil {
		return nil, err
	}
	for l, set := range add {
		if err := s.cfg.checkAvailable(l, set); err != nil {
			return nil, err
		}
	}
	if s.cfg.Capacity > 0 {
		after := router.Holdings{}
		for l, set := range s.Holdings() {
			c := set.Clone()
			after[l] = &c
		}
		for l, set := range add {
			if after[l] == nil {
				after[l] = &router.Set{}
			}
			after[l].Union(set)
		}
		if err := s.cfg.checkRoom(after); err != nil {
			return nil, err
		}
	}
	s.loading.Add(1)
	s.changes.notify()
	defer func() {
		s.loading.Add(-1)
		s.changes.notify()
	}()
	if r, ok := s.cfg.Executor.(Resident); ok {
		for l, set := range add {
			if err := r.Load(ctx, l, ids(set)); err != nil {
				return nil, fmt.Errorf("expertnode: loading layer %d experts %s: %w", l, set, err)
			}
		}
	}
	v := s.change(func(h router.Holdings) {
		for l, set := range add {
			if h[l] == nil {
				h[l] = &router.Set{}
			}
			h[l].Union(set)
		}
	})
	s.log.Info("loaded experts", "experts", len(add), "holdings_version", v)
	return &ixv1.LoadResponse{HoldingsVersion: v}, nil
}

// Release drops experts from the holdings, then lets the executor evict.
func (s *Service) Release(ctx context.Context, req *ixv1.ReleaseRequest) (*ixv1.ReleaseResponse, error) {
	drop, err := router.HoldingsFromProto(req.GetExperts(), s.checkRange)
	if err != nil {
		return nil, err
	}
	v := s.change(func(h router.Holdings) {
		for l, set := range drop {
			if h[l] != nil {
				h[l].Subtract(set)
			}
		}
	})
	if r, ok := s.cfg.Executor.(Resident); ok {
		for l, set := range drop {
			if err := r.Release(ctx, l, ids(set)); err != nil {
				return nil, fmt.Errorf("expertnode: releasing layer %d experts %s: %w", l, set, err)
			}
		}
	}
	s.log.Info("released experts", "holdings_version", v)
	return &ixv1.ReleaseResponse{HoldingsVersion: v}, nil
}

// change applies f to a copy of the holdings and publishes it.
func (s *Service) change(f func(router.Holdings)) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := router.Holdings{}
	for l, set := range *s.held.Load() {
		c := set.Clone()
		h[l] = &c
	}
	f(h)
	s.held.Store(&h)
	return s.version.Add(1)
}

func (s *Service) checkRange(layer, _, last int) error {
	if !s.cfg.Model.IsMoE(layer) {
		return fmt.Errorf("%w: layer %d", ErrUnknownLayer, layer)
	}
	if last >= s.cfg.Model.Experts {
		return fmt.Errorf("%w: layer %d expert %d (the model has %d)", experts.ErrUnknownExpert, layer, last, s.cfg.Model.Experts)
	}
	return nil
}

func oneExpert(e int) *router.Set {
	var s router.Set
	s.Add(e)
	return &s
}

func ids(s *router.Set) []int {
	var out []int
	for _, r := range s.Ranges() {
		for id := r[0]; id <= r[1]; id++ {
			out = append(out, id)
		}
	}
	return out
}

// Status reports the model, holdings and counters.
func (s *Service) Status(_ context.Context, req *ixv1.StatusRequest) (*ixv1.StatusResponse, error) {
	var avail *ixv1.Availability
	if s.cfg.Available != nil {
		avail = &ixv1.Availability{Experts: s.cfg.Available.ToProto()}
	}
	model := s.cfg.Model.Proto()
	if req.GetTensorHashes() {
		model.TensorHashes = s.cfg.Model.TensorHashes()
	}
	return &ixv1.StatusResponse{
		Available:       avail,
		NodeId:          s.cfg.NodeID,
		Model:           model,
		Held:            s.held.Load().ToProto(),
		HoldingsVersion: s.version.Load(),
		Serving:         !s.draining.Load(),
		ForwardCalls:    s.calls.Load(),
		ForwardRows:     s.rows.Load(),
		InFlight:        uint32(max(s.inFlight.Load(), 0)),
	}, nil
}
