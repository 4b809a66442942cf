package router

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/inference-x/inference-x/gguf"
)

// ErrPlan is wrapped by errors about placement inputs.
var ErrPlan = errors.New("router: bad placement input")

// PlanConfig is what placement needs to know about the model and the
// replication wanted.
type PlanConfig struct {
	// Experts is the number of routed experts per MoE layer.
	Experts int
	// ExpertBytes[l] is the size of one expert of layer l (gate, up and
	// down together); 0 marks a layer without routed experts.
	ExpertBytes []int64
	// Replicas is R: the nodes each (layer, expert) is assigned to.
	Replicas int
	// HotExperts is how many of the most activated (layer, expert) pairs
	// (by Activations) get HotReplicas more replicas each.
	HotExperts  int
	HotReplicas int
	// Activations are observed activation counts, indexed
	// layer*Experts+expert (nil: none observed, no hot replicas).
	Activations []uint64
}

// PlanNode is a live node placement may assign experts to.
type PlanNode struct {
	ID string
	// Host names the machine; replicas of one expert go to different
	// hosts when there are enough (the NUMA nodes of one box fail
	// together). Empty: the node is its own host.
	Host string
	// Capacity is the bytes of experts the node may hold (0: no limit;
	// such nodes weigh as much as the largest limited node).
	Capacity int64
	// Available, when not nil, is what the node can hold at all (a node
	// started from a shard file holds only the experts in it).
	Available Holdings
}

// Plan is a placement: which node holds which experts. Nodes are sorted
// by ID.
type Plan struct {
	Replicas int         `json:"replicas"`
	Nodes    []PlanShard `json:"nodes"`
	// UnderReplicated counts (layer, expert) pairs with fewer holders
	// than wanted (not enough nodes, room or availability); Unplaced
	// those with none.
	UnderReplicated int `json:"under_replicated"`
	Unplaced        int `json:"unplaced"`
}

// PlanShard is one node's part of a plan.
type PlanShard struct {
	ID       string   `json:"id"`
	Holdings Holdings `json:"-"`
	Experts  int      `json:"experts"`
	Bytes    int64    `json:"bytes"`
	Capacity int64    `json:"capacity,omitempty"`
}

// Shard returns the part of node id, or nil.
func (p *Plan) Shard(id string) *PlanShard {
	i, ok := slices.BinarySearchFunc(p.Nodes, id, func(s PlanShard, id string) int { return cmp.Compare(s.ID, id) })
	if !ok {
		return nil
	}
	return &p.Nodes[i]
}

// Holdings returns every node's holdings by id.
func (p *Plan) Holdings() map[string]Holdings {
	m := make(map[string]Holdings, len(p.Nodes))
	for _, s := range p.Nodes {
		m[s.ID] = s.Holdings
	}
	return m
}

// Validate checks the config.
func (c *PlanConfig) Validate() error {
	switch {
	case c.Experts <= 0:
		return fmt.Errorf("%w: %d experts per layer", ErrPlan, c.Experts)
	case c.Replicas <= 0:
		return fmt.Errorf("%w: replication factor %d (want at least 1)", ErrPlan, c.Replicas)
	case c.HotExperts < 0 || c.HotReplicas < 0:
		return fmt.Errorf("%w: negative hot expert settings", ErrPlan)
	case c.Activations != nil && len(c.Activations) != len(c.ExpertBytes)*c.Experts:
		return fmt.Errorf("%w: %d activation counts for %d layers x %d experts", ErrPlan, len(c.Activations), len(c.ExpertBytes), c.Experts)
	}
	moe := 0
	for l, b := range c.ExpertBytes {
		if b < 0 {
			return fmt.Errorf("%w: layer %d experts of %d bytes", ErrPlan, l, b)
		}
		if b > 0 {
			moe++
		}
	}
	if moe == 0 {
		return fmt.Errorf("%w: no layer has routed experts", ErrPlan)
	}
	return nil
}

// MoELayers returns the layers with routed experts.
func (c *PlanConfig) MoELayers() []int {
	var out []int
	for l, b := range c.ExpertBytes {
		if b > 0 {
			out = append(out, l)
		}
	}
	return out
}

// PlanConfigFromFile returns a config for f's routed experts (R = 1):
// each layer's expert size is its gate, up and down tensors over the
// number of experts.
func PlanConfigFromFile(f *gguf.File, info ModelInfo) PlanConfig {
	c := PlanConfig{Experts: info.Experts, ExpertBytes: make([]int64, info.Layers), Replicas: 1}
	for _, l := range info.MoELayers {
		var n int64
		for _, name := range expertTensors {
			if t, ok := f.Tensor("blk." + strconv.Itoa(l) + "." + name); ok {
				n += t.Size
			}
		}
		c.ExpertBytes[l] = n / int64(info.Experts)
	}
	return c
}

// NewPlan assigns every (layer, expert) to R nodes (more for the hottest
// experts), starting from current, the holdings of the nodes now (nil or
// missing entries: nothing). It is deterministic: the same inputs give the
// same plan, whatever the order of nodes. It moves as little as it can:
//
//  1. every current holding on a live node is kept, unless the node is
//     over its capacity or the expert has more replicas than wanted
//     (then the most loaded holders give them up);
//  2. missing replicas go, largest first, to the eligible node with the
//     most room under its fair share of the bytes (shares are
//     proportional to capacity), on a host that holds no other replica
//     when there is one;
//  3. while a node is over its share by more than half an expert and
//     another is under it likewise, an expert moves from the first to
//     the second (this is what gives a new node its share).
//
// So when a node leaves, about the bytes it held move; when one joins,
// about its share.
func NewPlan(cfg PlanConfig, nodes []PlanNode, current map[string]Holdings) (*Plan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := newPlanner(cfg, nodes)
	if err != nil {
		return nil, err
	}
	p.keep(current)
	p.fill()
	p.rebalance()
	return p.result(), nil
}

// planner is NewPlan's working state. Items are (layer, expert) pairs
// indexed layer*Experts+expert over every layer (non-MoE layers are
// skipped).
type planner struct {
	cfg     PlanConfig
	nodes   []PlanNode // sorted by ID
	host    []int      // host index per node
	weight  []float64
	load    []int64
	target  []float64
	want    []int     // replicas wanted per item
	holders [][]int32 // per item: node indices
}

func newPlanner(cfg PlanConfig, in []PlanNode) (*planner, error) {
	nodes := slices.Clone(in)
	slices.SortFunc(nodes, func(a, b PlanNode) int { return cmp.Compare(a.ID, b.ID) })
	p := &planner{cfg: cfg, nodes: nodes}
	hosts := map[string]int{}
	var maxCap int64
	for i, n := range nodes {
		if n.ID == "" {
			return nil, fmt.Errorf("%w: a node without an id", ErrPlan)
		}
		if i > 0 && nodes[i-1].ID == n.ID {
			return nil, fmt.Errorf("%w: node %q given twice", ErrPlan, n.ID)
		}
		if n.Capacity < 0 {
			return nil, fmt.Errorf("%w: node %q has capacity %d", ErrPlan, n.ID, n.Capacity)
		}
		h := n.Host
		if h == "" {
			h = "\x00" + n.ID
		}
		if _, ok := hosts[h]; !ok {
			hosts[h] = len(hosts)
		}
		p.host = append(p.host, hosts[h])
		maxCap = max(maxCap, n.Capacity)
	}
	for _, n := range nodes {
		w := float64(n.Capacity)
		if n.Capacity == 0 {
			w = float64(max(maxCap, 1))
		}
		p.weight = append(p.weight, w)
	}
	p.load = make([]int64, len(nodes))
	p.target = make([]float64, len(nodes))
	nItems := len(cfg.ExpertBytes) * cfg.Experts
	p.want = make([]int, nItems)
	p.holders = make([][]int32, nItems)
	for i := range nItems {
		if p.bytes(i) > 0 {
			p.want[i] = cfg.Replicas
		}
	}
	p.markHot()
	for i := range p.want {
		p.want[i] = min(p.want[i], len(nodes))
	}
	var total float64
	for i, w := range p.want {
		total += float64(w) * float64(p.bytes(i))
	}
	var sumW float64
	for _, w := range p.weight {
		sumW += w
	}
	for n := range nodes {
		p.target[n] = total * p.weight[n] / sumW
		if c := nodes[n].Capacity; c > 0 && p.target[n] > float64(c) {
			p.target[n] = float64(c)
		}
	}
	return p, nil
}

// markHot raises the wanted replicas of the HotExperts most activated
// items (ties broken by index, so the choice is deterministic).
func (p *planner) markHot() {
	a := p.cfg.Activations
	if a == nil || p.cfg.HotExperts == 0 || p.cfg.HotReplicas == 0 {
		return
	}
	var idx []int
	for i, n := range a {
		if n > 0 && p.want[i] > 0 {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(x, y int) int {
		if c := cmp.Compare(a[y], a[x]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	for _, i := range idx[:min(len(idx), p.cfg.HotExperts)] {
		p.want[i] += p.cfg.HotReplicas
	}
}

func (p *planner) bytes(item int) int64 { return p.cfg.ExpertBytes[item/p.cfg.Experts] }

func (p *planner) split(item int) (layer, expert int) {
	return item / p.cfg.Experts, item % p.cfg.Experts
}

// rank is a deterministic pseudo-random order of (item, node) pairs, so
// ties spread experts evenly rather than by node name.
func (p *planner) rank(item, node int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(p.nodes[node].ID))
	var b [8]byte
	for i := range b {
		b[i] = byte(item >> (8 * i))
	}
	h.Write(b[:])
	return h.Sum64()
}

func (p *planner) can(item, node int) bool {
	n := &p.nodes[node]
	if n.Available != nil {
		l, e := p.split(item)
		if !n.Available.Has(l, e) {
			return false
		}
	}
	return n.Capacity == 0 || p.load[node]+p.bytes(item) <= n.Capacity
}

func (p *planner) holds(item, node int) bool { return slices.Contains(p.holders[item], int32(node)) }

// hostFree reports whether no holder of item other than except shares
// node's host.
func (p *planner) hostFree(item, node, except int) bool {
	for _, h := range p.holders[item] {
		if int(h) != except && p.host[h] == p.host[node] {
			return false
		}
	}
	return true
}

func (p *planner) add(item, node int) {
	p.holders[item] = append(p.holders[item], int32(node))
	p.load[node] += p.bytes(item)
}

func (p *planner) remove(item, node int) {
	p.holders[item] = slices.DeleteFunc(p.holders[item], func(h int32) bool { return int(h) == node })
	p.load[node] -= p.bytes(item)
}

// keep adopts the current holdings of live nodes, then trims nodes over
// capacity and items over their wanted replicas.
func (p *planner) keep(current map[string]Holdings) {
	for n, node := range p.nodes {
		h := current[node.ID]
		for l, set := range h {
			if l < 0 || l >= len(p.cfg.ExpertBytes) || p.cfg.ExpertBytes[l] == 0 || set == nil {
				continue
			}
			for _, r := range set.Ranges() {
				for e := r[0]; e <= min(r[1], p.cfg.Experts-1); e++ {
					item := l*p.cfg.Experts + e
					if node.Available == nil || node.Available.Has(l, e) {
						p.add(item, n)
					}
				}
			}
		}
	}
	// Over capacity: give up the node's items, most replicated first.
	for n, node := range p.nodes {
		if node.Capacity == 0 || p.load[n] <= node.Capacity {
			continue
		}
		items := p.itemsOf(n)
		slices.SortStableFunc(items, func(a, b int) int { return cmp.Compare(len(p.holders[b]), len(p.holders[a])) })
		for _, it := range items {
			if p.load[n] <= node.Capacity {
				break
			}
			p.remove(it, n)
		}
	}
	// Over-replicated: the most loaded (relative to share) holders give up.
	for it := range p.holders {
		for len(p.holders[it]) > p.want[it] {
			worst := -1
			for _, h := range p.holders[it] {
				if worst < 0 || p.fillRatio(int(h)) > p.fillRatio(worst) ||
					p.fillRatio(int(h)) == p.fillRatio(worst) && int(h) > worst {
					worst = int(h)
				}
			}
			p.remove(it, worst)
		}
	}
}

// itemsOf returns node n's items in index order.
func (p *planner) itemsOf(n int) []int {
	var out []int
	for it, hs := range p.holders {
		if slices.Contains(hs, int32(n)) {
			out = append(out, it)
		}
	}
	return out
}

func (p *planner) fillRatio(n int) float64 {
	if p.target[n] <= 0 {
		return float64(p.load[n]) + 1
	}
	return float64(p.load[n]) / p.target[n]
}

// fill gives every item its missing replicas.
func (p *planner) fill() {
	var items []int
	for it, w := range p.want {
		if len(p.holders[it]) < w {
			items = append(items, it)
		}
	}
	// Largest experts first (they are the hardest to fit), then a spread
	// order so consecutive experts do not land together.
	slices.SortFunc(items, func(a, b int) int {
		if c := cmp.Compare(p.bytes(b), p.bytes(a)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for _, it := range items {
		for len(p.holders[it]) < p.want[it] {
			best := p.pickFill(it, true)
			if best < 0 {
				best = p.pickFill(it, false)
			}
			if best < 0 {
				break
			}
			p.add(it, best)
		}
	}
}

// pickFill returns the eligible node with the most room under its share
// for item (on a host without a replica when distinctHost), or -1.
func (p *planner) pickFill(item int, distinctHost bool) int {
	best := -1
	var bestRoom float64
	var bestRank uint64
	for n := range p.nodes {
		if p.holds(item, n) || !p.can(item, n) || distinctHost && !p.hostFree(item, n, -1) {
			continue
		}
		room := (p.target[n] - float64(p.load[n])) / max(p.weight[n], 1)
		rk := p.rank(item, n)
		if best < 0 || room > bestRoom || room == bestRoom && rk < bestRank {
			best, bestRoom, bestRank = n, room, rk
		}
	}
	return best
}

// rebalance moves experts from nodes over their share to nodes under it
// while a move shrinks the imbalance by a clear margin.
func (p *planner) rebalance() {
	// Each node's items in a fixed spread order; cursors advance as items
	// are found unmovable or moved.
	order := make([][]int, len(p.nodes))
	cursor := make([]int, len(p.nodes))
	for n := range p.nodes {
		order[n] = p.itemsOf(n)
		slices.SortFunc(order[n], func(a, b int) int { return cmp.Compare(p.rank(a, n), p.rank(b, n)) })
	}
	blocked := make([]bool, len(p.nodes)) // no item of this node can move to any under node
	for range len(p.want) * 2 {
		src, dst := -1, -1
		var over, under float64
		for n := range p.nodes {
			d := float64(p.load[n]) - p.target[n]
			if !blocked[n] && (src < 0 || d > over) {
				src, over = n, d
			}
			if dst < 0 || -d > under {
				dst, under = n, -d
			}
		}
		if src < 0 || dst < 0 || over <= 0 || under <= 0 {
			return
		}
		moved := false
		for cursor[src] < len(order[src]) {
			it := order[src][cursor[src]]
			cursor[src]++
			if !p.holds(it, src) {
				continue // moved away earlier
			}
			s := float64(p.bytes(it))
			if s >= 2*min(over, under) {
				continue // the move would not shrink the imbalance by enough
			}
			to := p.pickMove(it, src)
			if to < 0 {
				continue
			}
			p.remove(it, src)
			p.add(it, to)
			moved = true
			break
		}
		if !moved {
			blocked[src] = true
		}
	}
}

// pickMove returns the node most under its share that may take item from
// src, or -1; it must be under its share by more than half the item.
func (p *planner) pickMove(item, src int) int {
	best := -1
	var bestUnder float64
	s := float64(p.bytes(item))
	for n := range p.nodes {
		under := p.target[n] - float64(p.load[n])
		if n == src || under <= s/2 || p.holds(item, n) || !p.can(item, n) ||
			!p.hostFree(item, n, src) && p.hostFree(item, src, src) {
			continue
		}
		if best < 0 || under > bestUnder || under == bestUnder && n < best {
			best, bestUnder = n, under
		}
	}
	return best
}

func (p *planner) result() *Plan {
	out := &Plan{Replicas: p.cfg.Replicas, Nodes: make([]PlanShard, len(p.nodes))}
	for n, node := range p.nodes {
		out.Nodes[n] = PlanShard{ID: node.ID, Holdings: Holdings{}, Capacity: node.Capacity}
	}
	for it, hs := range p.holders {
		if p.want[it] == 0 {
			continue
		}
		if len(hs) < p.want[it] {
			out.UnderReplicated++
		}
		if len(hs) == 0 {
			out.Unplaced++
		}
		l, e := p.split(it)
		for _, h := range hs {
			sh := &out.Nodes[h]
			s := sh.Holdings[l]
			if s == nil {
				s = &Set{}
				sh.Holdings[l] = s
			}
			s.Add(e)
			sh.Experts++
			sh.Bytes += p.bytes(it)
		}
	}
	return out
}

// Movement is what it takes to go from one placement to another.
type Movement struct {
	// Nodes are the changes per node (only nodes with changes), by ID.
	Nodes []NodeMove `json:"nodes"`
	// ExpertsMoved and BytesMoved count the loads: (node, expert) pairs
	// the new placement has and the old one does not.
	ExpertsMoved int   `json:"experts_moved"`
	BytesMoved   int64 `json:"bytes_moved"`
	// ExpertsReleased and BytesReleased count the releases.
	ExpertsReleased int   `json:"experts_released"`
	BytesReleased   int64 `json:"bytes_released"`
}

// NodeMove is one node's changes.
type NodeMove struct {
	ID           string   `json:"id"`
	Load         Holdings `json:"-"`
	Release      Holdings `json:"-"`
	LoadCount    int      `json:"load_experts"`
	LoadBytes    int64    `json:"load_bytes"`
	ReleaseCount int      `json:"release_experts"`
	ReleaseBytes int64    `json:"release_bytes"`
}

// Diff returns the moves from the holdings old (by node ID) to the plan
// to; expertBytes sizes the experts of each layer.
func Diff(expertBytes []int64, old, to map[string]Holdings) Movement {
	ids := map[string]bool{}
	for id := range old {
		ids[id] = true
	}
	for id := range to {
		ids[id] = true
	}
	var m Movement
	for _, id := range slices.Sorted(mapKeys(ids)) {
		nm := NodeMove{ID: id, Load: minus(to[id], old[id]), Release: minus(old[id], to[id])}
		nm.LoadCount, nm.LoadBytes = count(nm.Load, expertBytes)
		nm.ReleaseCount, nm.ReleaseBytes = count(nm.Release, expertBytes)
		if nm.LoadCount == 0 && nm.ReleaseCount == 0 {
			continue
		}
		m.ExpertsMoved += nm.LoadCount
		m.BytesMoved += nm.LoadBytes
		m.ExpertsReleased += nm.ReleaseCount
		m.BytesReleased += nm.ReleaseBytes
		m.Nodes = append(m.Nodes, nm)
	}
	return m
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// minus returns a - b per layer (layers left empty are dropped).
func minus(a, b Holdings) Holdings {
	out := Holdings{}
	for l, s := range a {
		if s == nil {
			continue
		}
		c := s.Clone()
		if o := b[l]; o != nil {
			c.Subtract(o)
		}
		if c.Len() > 0 {
			out[l] = &c
		}
	}
	return out
}

// count returns the experts in h and their bytes.
func count(h Holdings, expertBytes []int64) (n int, bytes int64) {
	for l, s := range h {
		k := s.Len()
		n += k
		if l >= 0 && l < len(expertBytes) {
			bytes += int64(k) * expertBytes[l]
		}
	}
	return n, bytes
}

// UnderReplicated counts the (layer, expert) pairs of the MoE layers
// (ExpertBytes > 0) held by fewer than r of the given holdings.
func UnderReplicated(expertBytes []int64, experts, r int, holdings []Holdings) int {
	n := 0
	for l, b := range expertBytes {
		if b == 0 {
			continue
		}
		for e := range experts {
			c := 0
			for _, h := range holdings {
				if h.Has(l, e) {
					c++
				}
			}
			if c < r {
				n++
			}
		}
	}
	return n
}
