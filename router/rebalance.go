package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/inference-x/inference-x/internal/rpc"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// ErrUnknownNode is wrapped when an operation names a node that is not a
// live member.
var ErrUnknownNode = errors.New("router: unknown node")

// Member is a live expert node as membership reports it.
type Member struct {
	ID       string
	Addr     string // gRPC host:port
	Host     string
	Capacity int64
	Load     uint32
	Draining bool // the node asked to be emptied (shutting down)
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Router is the configuration of the Routers the manager builds (the
	// model, the local fallback, the client security).
	Router Config
	// Plan is the placement configuration (experts, sizes, replicas).
	Plan PlanConfig
	// LoadTimeout bounds a node's Load (prefetch) of its new experts.
	LoadTimeout time.Duration
	Logger      *slog.Logger
}

// Manager keeps the placement in step with membership: on every change
// it plans (NewPlan from the live nodes and what they hold), has the new
// holders Load their experts first, switches routing to the new placement
// once they report ready, and only then has the old holders Release
// theirs, so no call is routed to an expert that is not held. It owns a
// Dynamic backend, which the model uses. Methods are safe for concurrent
// use; changes are applied one at a time.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger
	dyn *Dynamic

	mu       sync.Mutex // serialises changes; guards the fields below
	members  map[string]Member
	held     map[string]Holdings // what each live node holds, as far as we know
	avail    map[string]Holdings // what a node can hold at all (shard nodes only)
	conns    map[string]*grpc.ClientConn
	drained  map[string]bool // drained by an operator
	epoch    uint64
	lastPlan *Plan
	routed   string // routeKey of the Router in force
}

// NewManager starts with no nodes: calls go to the local backend, if any.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if err := cfg.Plan.Validate(); err != nil {
		return nil, err
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = 10 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Router.Logger = log
	r, err := New(context.Background(), cfg.Router, nil)
	if err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, log: log, dyn: NewDynamic(r), members: map[string]Member{}, held: map[string]Holdings{}, avail: map[string]Holdings{},
		conns: map[string]*grpc.ClientConn{}, drained: map[string]bool{}}, nil
}

// Backend returns the experts.Backend that routes with the current
// placement.
func (m *Manager) Backend() *Dynamic { return m.dyn }

// Close closes the node connections and the current Router.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, c := range m.conns {
		errs = append(errs, c.Close())
	}
	m.conns = map[string]*grpc.ClientConn{}
	return errors.Join(append(errs, m.dyn.Close())...)
}

// Update is a membership change: members are the live expert nodes. It
// returns once the new placement is in force (or the change failed, in
// which case routing stays as it was for the nodes that are still alive).
func (m *Manager) Update(ctx context.Context, members []Member) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := map[string]Member{}
	for _, mb := range members {
		live[mb.ID] = mb
	}
	for id := range m.members {
		if _, ok := live[id]; !ok {
			m.log.Info("expert node gone", "node", id)
			if m.drained[id] {
				// As a deleted and re-registered Kubernetes node: a node
				// that leaves (or restarts) comes back schedulable.
				m.log.Info("drained node left: it gets experts again if it rejoins", "node", id)
				delete(m.drained, id)
			}
			delete(m.held, id)
			delete(m.avail, id)
			if c := m.conns[id]; c != nil {
				c.Close()
				delete(m.conns, id)
			}
		}
	}
	var errs []error
	for id, mb := range live {
		if old, ok := m.members[id]; ok && old.Addr == mb.Addr {
			continue
		}
		// A new node (or a new address): learn what it holds.
		if c := m.conns[id]; c != nil {
			c.Close()
		}
		if m.drained[id] { // restarted elsewhere: a new node
			m.log.Info("drained node came back at a new address: it gets experts again", "node", id, "addr", mb.Addr)
			delete(m.drained, id)
		}
		h, avail, conn, err := m.status(ctx, mb)
		if err != nil {
			errs = append(errs, err)
			delete(live, id)
			continue
		}
		m.conns[id], m.held[id] = conn, h
		if avail != nil {
			m.avail[id] = avail
		} else {
			delete(m.avail, id)
		}
		m.log.Info("expert node joined", "node", id, "addr", mb.Addr, "experts", countExperts(h), "shard", avail != nil)
	}
	m.members = live
	return errors.Join(append(errs, m.rebalance(ctx, nil))...)
}

// status asks a node for its holdings and what it can hold (nil: any
// expert) and checks its model.
func (m *Manager) status(ctx context.Context, mb Member) (held, avail Holdings, _ *grpc.ClientConn, _ error) {
	conn, err := rpc.Dial(mb.Addr, m.cfg.Router.Client)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Router.StatusTimeout)
	defer cancel()
	st, err := ixv1.NewExpertServiceClient(conn).Status(ctx, &ixv1.StatusRequest{}, grpc.WaitForReady(true))
	if err == nil {
		err = m.cfg.Router.Model.checkModel(ctx, ixv1.NewExpertServiceClient(conn), st.GetModel())
	}
	if err == nil {
		held, err = HoldingsFromProto(st.GetHeld(), nil)
	}
	if a := st.GetAvailable(); err == nil && a != nil {
		if avail, err = HoldingsFromProto(a.GetExperts(), nil); err == nil && avail == nil {
			avail = Holdings{}
		}
	}
	if err != nil {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("router: expert node %s (%s): %w", mb.ID, mb.Addr, err)
	}
	return held, avail, conn, nil
}

// planNodes returns the nodes placement may use.
func (m *Manager) planNodes() []PlanNode {
	var out []PlanNode
	for id, mb := range m.members {
		if mb.Draining || m.drained[id] {
			continue
		}
		out = append(out, PlanNode{ID: id, Host: mb.Host, Capacity: mb.Capacity, Available: m.avail[id]})
	}
	return out
}

// rebalance plans (or takes target) and carries the change out: load,
// switch, release. Called with mu held.
func (m *Manager) rebalance(ctx context.Context, target map[string]Holdings) error {
	if target == nil {
		p, err := NewPlan(m.cfg.Plan, m.planNodes(), m.held)
		if err != nil {
			return err
		}
		if err := p.Shortfall(); err != nil {
			// Carried out all the same: every expert that fits is served.
			m.log.Warn("placement incomplete", "err", err)
		}
		m.lastPlan = p
		target = p.Holdings()
	}
	mv := Diff(m.cfg.Plan.ExpertBytes, m.held, target)
	// 1. New holders load (prefetch) first, concurrently.
	var wg sync.WaitGroup
	errs := make([]error, len(mv.Nodes))
	for i, nm := range mv.Nodes {
		if nm.LoadCount == 0 || m.conns[nm.ID] == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lctx, cancel := context.WithTimeout(ctx, m.cfg.LoadTimeout)
			defer cancel()
			_, err := ixv1.NewExpertServiceClient(m.conns[nm.ID]).Load(lctx, &ixv1.LoadRequest{Experts: nm.Load.ToProto(), ModelFingerprint: m.cfg.Router.Model.Fingerprint})
			if err != nil {
				errs[i] = fmt.Errorf("router: node %s: load %d experts: %w", nm.ID, nm.LoadCount, err)
			}
		}()
	}
	wg.Wait()
	for i, nm := range mv.Nodes {
		if errs[i] == nil {
			h := m.held[nm.ID]
			if h == nil {
				h = Holdings{}
			}
			for l, s := range nm.Load {
				if h[l] == nil {
					h[l] = &Set{}
				}
				h[l].Union(s)
			}
			m.held[nm.ID] = h
		}
	}
	// 2. Switch routing to what is held now and wanted: the new holders
	// are ready; experts about to be released are routed away from.
	route := map[string]Holdings{}
	for id, h := range m.held {
		if t, ok := target[id]; ok {
			route[id] = intersect(h, t)
		} else {
			route[id] = Holdings{}
		}
		// Keep an old holder routable for experts whose new holders failed
		// to load: it releases nothing then.
	}
	for l, e := range m.uncovered(route) {
		for id, h := range m.held {
			if h.Has(l, e) {
				s := route[id][l]
				if s == nil {
					s = &Set{}
					route[id][l] = s
				}
				s.Add(e)
				break
			}
		}
	}
	key := m.routeKey(route)
	if key == m.routed && mv.ExpertsMoved == 0 && mv.ExpertsReleased == 0 {
		return errors.Join(errs...) // nothing changed
	}
	if err := m.swap(ctx, route); err != nil {
		return errors.Join(append(errs, err)...)
	}
	m.routed = key
	// 3. Old holders release what routing no longer uses.
	for id, h := range m.held {
		drop := minus(h, route[id])
		n, _ := count(drop, m.cfg.Plan.ExpertBytes)
		if n == 0 || m.conns[id] == nil {
			continue
		}
		_, err := ixv1.NewExpertServiceClient(m.conns[id]).Release(ctx, &ixv1.ReleaseRequest{Experts: drop.ToProto()})
		if err != nil {
			errs = append(errs, fmt.Errorf("router: node %s: release %d experts: %w", id, n, err))
			continue // it still holds them; the next change retries
		}
		m.held[id] = route[id]
	}
	m.epoch++
	m.log.Info("placement in force", "epoch", m.epoch, "nodes", len(route), "experts_loaded", mv.ExpertsMoved,
		"bytes_loaded", mv.BytesMoved, "experts_released", mv.ExpertsReleased)
	return errors.Join(errs...)
}

// uncovered yields the MoE (layer, expert) pairs no route holds.
func (m *Manager) uncovered(route map[string]Holdings) func(func(int, int) bool) {
	return func(yield func(int, int) bool) {
		for _, l := range m.cfg.Plan.MoELayers() {
			for e := range m.cfg.Plan.Experts {
				held := false
				for _, h := range route {
					if h.Has(l, e) {
						held = true
						break
					}
				}
				if !held && !yield(l, e) {
					return
				}
			}
		}
	}
}

// routeKey identifies a routing: nodes, addresses and holdings.
func (m *Manager) routeKey(route map[string]Holdings) string {
	var b strings.Builder
	for _, id := range slices.Sorted(mapKeys(route)) {
		fmt.Fprintf(&b, "%s@%s:", id, m.members[id].Addr)
		for _, l := range slices.Sorted(mapKeys(route[id])) {
			fmt.Fprintf(&b, "%d=%s;", l, route[id][l])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// swap installs a Router over route.
func (m *Manager) swap(ctx context.Context, route map[string]Holdings) error {
	var specs []NodeSpec
	for _, id := range slices.Sorted(mapKeys(route)) {
		specs = append(specs, NodeSpec{Name: id, Addr: m.members[id].Addr, Holdings: route[id]})
	}
	r, err := New(ctx, m.cfg.Router, specs)
	if err != nil {
		return err
	}
	m.dyn.Swap(r)
	return nil
}

func intersect(a, b Holdings) Holdings {
	out := Holdings{}
	for l, s := range a {
		if o := b[l]; o != nil && s != nil {
			c := s.Clone()
			d := c.Clone()
			d.Subtract(o) // in a, not in b
			c.Subtract(&d)
			if c.Len() > 0 {
				out[l] = &c
			}
		}
	}
	return out
}

func countExperts(h Holdings) int {
	n := 0
	for _, s := range h {
		n += s.Len()
	}
	return n
}

// Drain empties node id: placement gives it nothing and its experts move
// to the others (it stays a member and keeps serving until they have).
func (m *Manager) Drain(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.members[id]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	m.drained[id] = true
	return m.rebalance(ctx, nil)
}

// Undrain lets placement use drained node id again (kubectl uncordon)
// and re-plans, returning when the new placement is in force. A node that
// is not drained is left as it is. Drain marks also end when the node
// leaves membership or comes back at another address (a restart).
func (m *Manager) Undrain(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.members[id]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	if !m.drained[id] {
		return nil
	}
	delete(m.drained, id)
	m.log.Info("node undrained: placement uses it again", "node", id)
	return m.rebalance(ctx, nil)
}

// Move moves one replica of expert e of layer l to node to: it loads
// there, then the holder with the most bytes releases it.
func (m *Manager) Move(ctx context.Context, l, e int, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.members[to]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownNode, to)
	}
	if l < 0 || l >= len(m.cfg.Plan.ExpertBytes) || m.cfg.Plan.ExpertBytes[l] == 0 || e < 0 || e >= m.cfg.Plan.Experts {
		return fmt.Errorf("%w: layer %d expert %d", ErrPlan, l, e)
	}
	target := map[string]Holdings{}
	from := ""
	var fromBytes int64
	for id, h := range m.held {
		target[id] = cloneHoldings(h)
		if h.Has(l, e) && id != to {
			if _, b := count(h, m.cfg.Plan.ExpertBytes); from == "" || b > fromBytes {
				from, fromBytes = id, b
			}
		}
	}
	if target[to].Has(l, e) {
		return nil // already there
	}
	if target[to] == nil {
		target[to] = Holdings{}
	}
	if target[to][l] == nil {
		target[to][l] = &Set{}
	}
	_, held := count(target[to], m.cfg.Plan.ExpertBytes)
	if err := checkRoom(to, m.members[to].Capacity, held, m.cfg.Plan.ExpertBytes[l]); err != nil {
		return err
	}
	if a := m.avail[to]; a != nil && !a.Has(l, e) {
		return fmt.Errorf("%w: node %s cannot hold layer %d expert %d (not in its shard file)", ErrCapacity, to, l, e)
	}
	target[to][l].Add(e)
	if from != "" {
		target[from][l].Remove(e)
	}
	return m.rebalance(ctx, target)
}

func cloneHoldings(h Holdings) Holdings {
	out := Holdings{}
	for l, s := range h {
		c := s.Clone()
		out[l] = &c
	}
	return out
}

// SetReplicas changes R and re-plans.
func (m *Manager) SetReplicas(ctx context.Context, r int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cfg.Plan
	c.Replicas = r
	if err := c.Validate(); err != nil {
		return err
	}
	m.cfg.Plan = c
	return m.rebalance(ctx, nil)
}

// DryRun plans for the given nodes (nil: the live ones; unknown ids are
// planned as new empty nodes) and replication r (0: the current) without
// changing anything, and returns the plan and the movement from now.
func (m *Manager) DryRun(ids []string, r int) (*Plan, Movement, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cfg.Plan
	if r > 0 {
		c.Replicas = r
	}
	nodes := m.planNodes()
	if ids != nil {
		nodes = nil
		for _, id := range ids {
			mb := m.members[id]
			nodes = append(nodes, PlanNode{ID: id, Host: mb.Host, Capacity: mb.Capacity, Available: m.avail[id]})
		}
	}
	p, err := NewPlan(c, nodes, m.held)
	if err != nil {
		return nil, Movement{}, err
	}
	return p, Diff(c.ExpertBytes, m.held, p.Holdings()), nil
}

// NodeStatus is one node in Status.
type NodeStatus struct {
	Member
	Drained bool
	Experts int
	Bytes   int64
}

// ClusterStatus is the manager's view.
type ClusterStatus struct {
	Nodes           []NodeStatus
	Replicas        int
	UnderReplicated int
	Epoch           uint64
}

// Status returns the live nodes and what they hold.
func (m *Manager) Status() ClusterStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := ClusterStatus{Replicas: m.cfg.Plan.Replicas, Epoch: m.epoch}
	var hs []Holdings
	for _, id := range slices.Sorted(mapKeys(m.members)) {
		n, b := count(m.held[id], m.cfg.Plan.ExpertBytes)
		st.Nodes = append(st.Nodes, NodeStatus{Member: m.members[id], Drained: m.drained[id], Experts: n, Bytes: b})
		hs = append(hs, m.held[id])
	}
	st.UnderReplicated = UnderReplicated(m.cfg.Plan.ExpertBytes, m.cfg.Plan.Experts, m.cfg.Plan.Replicas, hs)
	return st
}
