package experts

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// Policy chooses which resident expert the pager evicts first.
type Policy int

// Eviction policies. Each orders the resident, unpinned experts by a
// score and evicts the lowest (ties: the least recently used).
const (
	// PolicyLRFU scores an expert by the sum over its past uses of
	// 2^(-Lambda * tokens since that use) (Lee et al.'s LRFU): Lambda 0
	// is LFU, a large Lambda is LRU. The default; Lambda by measurement.
	PolicyLRFU Policy = iota
	// PolicyLRU evicts the least recently used expert.
	PolicyLRU
	// PolicyLFU evicts the least frequently used expert (counts never
	// decay).
	PolicyLFU
)

var policyNames = map[Policy]string{PolicyLRFU: "lrfu", PolicyLRU: "lru", PolicyLFU: "lfu"}

// String returns the policy's flag name.
func (p Policy) String() string {
	if s, ok := policyNames[p]; ok {
		return s
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy parses "lrfu", "lru" or "lfu".
func ParsePolicy(s string) (Policy, error) {
	for p, n := range policyNames {
		if strings.EqualFold(s, n) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("experts: unknown eviction policy %q (want lrfu, lru or lfu)", s)
}

// Evict is how an evicted expert's pages leave memory.
type Evict int

// Eviction methods.
const (
	// EvictDrop unmaps the pages (MADV_DONTNEED) and drops them from the
	// page cache (POSIX_FADV_DONTNEED on the file range): the memory is
	// free at once, also in a memory cgroup's count. The default.
	EvictDrop Evict = iota
	// EvictPageOut reclaims the mapped pages (MADV_PAGEOUT, Linux 5.4+).
	// Pages read ahead but never mapped stay cached.
	EvictPageOut
	// EvictDontNeed only unmaps (MADV_DONTNEED): the pages stay in the
	// page cache, charged to the cgroup, until the kernel reclaims them.
	EvictDontNeed
	// EvictNone keeps the books but leaves reclaim to the kernel.
	EvictNone
)

var evictNames = map[Evict]string{EvictDrop: "drop", EvictPageOut: "pageout", EvictDontNeed: "dontneed", EvictNone: "none"}

// String returns the eviction method's flag name.
func (e Evict) String() string {
	if s, ok := evictNames[e]; ok {
		return s
	}
	return fmt.Sprintf("Evict(%d)", int(e))
}

// ParseEvict parses "drop", "pageout", "dontneed" or "none".
func ParseEvict(s string) (Evict, error) {
	for e, n := range evictNames {
		if strings.EqualFold(s, n) {
			return e, nil
		}
	}
	return 0, fmt.Errorf("experts: unknown eviction method %q (want drop, pageout, dontneed or none)", s)
}

// PagerConfig configures expert residency.
type PagerConfig struct {
	// Budget is the most bytes of expert data kept resident (pinned
	// experts included). A single batch may exceed it while it runs:
	// its experts stay until it is done.
	Budget int64
	// Policy picks the experts to evict. Lambda is PolicyLRFU's decay per
	// token: a use weighs half as much after 1/Lambda tokens. The pager
	// counts a step per Forward call and takes a token to be one step per
	// MoE layer.
	Policy Policy
	Lambda float64
	// Evict is how evicted pages leave memory.
	Evict Evict
	// Predict prefetches, while layer L runs, the experts that layer L+1's
	// router picks for layer L's input (the residual stream changes little
	// from one layer to the next). PredictTop is how many experts are
	// predicted per row (0: the batch's K, the layer's top-k); batches of
	// more than PredictMaxRows rows (prompt chunks, which need most
	// experts anyway) skip it.
	Predict        bool
	PredictTop     int
	PredictMaxRows int
	// Pin lists experts (layer -> ids) loaded at open and never evicted
	// (Release unpins).
	Pin map[int][]int
	// NoRandom skips MADV_RANDOM on the expert tensors, leaving the
	// kernel's read-around on faults (for measurements).
	NoRandom bool
	// NoDensePrefetch skips MADV_WILLNEED on the other tensors at open.
	// The prefetch reads the dense weights (resident all the time
	// anyway) in large requests, so that no fault on them triggers the
	// kernel's read-around, which would spill into the expert tensors
	// next to them in the file (up to read_ahead_kb around each fault).
	NoDensePrefetch bool
	// RefreshHits issues MADV_WILLNEED for resident experts too, before
	// each use: if the kernel reclaimed some of their pages behind the
	// pager's back (a budget larger than the memory really free), they
	// are read in large requests instead of one page per fault.
	RefreshHits bool
}

// DefaultPagerConfig returns the defaults for a budget: LRFU with the
// decay chosen by measurement (experts/README.md), drop eviction,
// next-layer prediction for batches of up to 16 rows, refreshed hits.
func DefaultPagerConfig(budget int64) PagerConfig {
	return PagerConfig{Budget: budget, Policy: PolicyLRFU, Lambda: DefaultLambda, Evict: EvictDrop,
		Predict: true, PredictMaxRows: 16, RefreshHits: true}
}

// DefaultLambda is PolicyLRFU's default decay per token (a half-life of
// 100 tokens); see experts/README.md for the measurement behind it.
const DefaultLambda = 0.01

// Validate checks the config.
func (c *PagerConfig) Validate() error {
	switch {
	case c.Budget <= 0:
		return fmt.Errorf("experts: pager budget %d bytes must be positive", c.Budget)
	case c.Lambda < 0 || math.IsNaN(c.Lambda) || math.IsInf(c.Lambda, 0):
		return fmt.Errorf("experts: LRFU lambda %v must be a finite number >= 0", c.Lambda)
	case c.PredictTop < 0 || c.PredictMaxRows < 0:
		return fmt.Errorf("experts: PredictTop %d and PredictMaxRows %d must be >= 0", c.PredictTop, c.PredictMaxRows)
	}
	if _, ok := policyNames[c.Policy]; !ok {
		return fmt.Errorf("experts: unknown policy %d", int(c.Policy))
	}
	if _, ok := evictNames[c.Evict]; !ok {
		return fmt.Errorf("experts: unknown eviction method %d", int(c.Evict))
	}
	return nil
}

// advisor carries out the pager's decisions on memory: the file's
// madvise/fadvise calls, or nothing in a simulation.
type advisor interface {
	willNeed(e *entry)
	evict(e *entry)
	close()
}

// entry is one expert's residency state. The pager's table holds every
// expert of every MoE layer, indexed by layer base + expert id.
type entry struct {
	spans [3]span // gate, up, down
	bytes int64

	resident   bool
	pinned     bool
	predicted  bool  // in an outstanding prediction (not evictable)
	prefetched bool  // made resident by a prediction, not used since
	inUse      int32 // Forward calls in progress that use it
	heapIdx    int32 // position in the eviction heap, -1 if absent

	last  uint64  // step of the last use (or prefetch)
	count uint64  // uses
	crf   float64 // LRFU: decayed use count at step last
	score float64 // eviction order: lowest first
}

// span is one byte range of an expert in the mapping.
type span struct {
	data []byte
	part int   // split file
	off  int64 // file offset of data[0]
}

// layerPred is the outstanding prediction for one layer.
type layerPred struct {
	ids []int32 // table indices of the predicted experts
}

// pager tracks expert residency against a byte budget. Its methods lock
// p.mu; the Store calls begin and end around each Forward.
type pager struct {
	mu   sync.Mutex
	cfg  PagerConfig
	adv  advisor
	ents []entry
	heap []int32 // min-heap of resident unpinned experts by (score, last)
	tmp  []int32 // scratch: skipped heap tops, active reordering
	pred []layerPred
	step uint64
	// lambda is cfg.Lambda per step: per token / MoE layers.
	lambda float64

	resident, peak, pinned int64
	st                     Stats
}

// layerLayout is what the pager needs of one MoE layer: where its
// experts start in the table and each expert's spans. Empty spans (a
// simulation) carry only sizes.
type layerLayout struct {
	base, n int
	spans   func(e int) ([3]span, int64)
}

// newPager builds the table for layers (indexed by model layer; nil for
// layers without experts) and loads cfg.Pin.
func newPager(layers []*layerLayout, cfg PagerConfig, adv advisor) (*pager, error) {
	total := 0
	for _, l := range layers {
		if l != nil {
			total = max(total, l.base+l.n)
		}
	}
	p := &pager{cfg: cfg, adv: adv, ents: make([]entry, total),
		heap: make([]int32, 0, total), tmp: make([]int32, 0, total), pred: make([]layerPred, len(layers))}
	for _, l := range layers {
		if l == nil {
			continue
		}
		for e := 0; e < l.n; e++ {
			en := &p.ents[l.base+e]
			en.spans, en.bytes = l.spans(e)
			en.heapIdx = -1
		}
	}
	moe := 0
	for _, l := range layers {
		if l != nil {
			moe++
		}
	}
	p.lambda = cfg.Lambda / float64(max(moe, 1))
	p.st.Budget = cfg.Budget
	p.st.Policy, p.st.Evict = cfg.Policy, cfg.Evict
	pins := make([]int, 0, len(cfg.Pin))
	for l := range cfg.Pin {
		pins = append(pins, l)
	}
	sort.Ints(pins)
	for _, l := range pins {
		if l < 0 || l >= len(layers) || layers[l] == nil {
			return nil, fmt.Errorf("%w: pinned layer %d has no experts", ErrUnknownExpert, l)
		}
		for _, e := range cfg.Pin[l] {
			if e < 0 || e >= layers[l].n {
				return nil, fmt.Errorf("%w: pinned expert %d of layer %d", ErrUnknownExpert, e, l)
			}
			i := int32(layers[l].base + e)
			if en := &p.ents[i]; !en.pinned {
				en.pinned = true
				p.pinned += en.bytes
				p.admit(i)
			}
		}
	}
	if p.pinned > cfg.Budget {
		return nil, fmt.Errorf("experts: pinned experts take %d bytes, more than the budget of %d", p.pinned, cfg.Budget)
	}
	return p, nil
}

func (p *pager) close() { p.adv.close() }

// begin records the use of the experts active (ids of the layer whose
// table starts at base) by a Forward call: hits and misses, WILLNEED for
// the missing, the policy's scores; it consumes the layer's prediction.
// It reorders active so that resident experts come first.
func (p *pager) begin(layer, base int, active []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step++
	if pr := &p.pred[layer]; len(pr.ids) > 0 {
		p.st.Predicted += uint64(len(pr.ids))
		p.st.PredictNeeded += uint64(len(active))
		for _, e := range active {
			if p.ents[base+int(e)].predicted {
				p.st.PredictedUsed++
			}
		}
		p.clearPrediction(pr)
	}
	hits := p.tmp[:0]
	for _, e := range active {
		i := int32(base + int(e))
		en := &p.ents[i]
		en.inUse++
		if en.resident {
			p.st.Hits++
			p.st.HitBytes += en.bytes
			if en.prefetched {
				p.st.PrefetchHits++
			}
			hits = append(hits, e)
			if p.cfg.RefreshHits {
				p.willNeed(en)
			}
		} else {
			p.st.Misses++
			p.st.MissBytes += en.bytes
			p.admit(i)
		}
		en.prefetched = false
		p.touch(i)
	}
	// Resident experts first, then the missing ones, each in id order
	// (hits is a subsequence of active).
	if n := len(hits); n > 0 && n < len(active) {
		order, h := hits, 0
		for _, e := range active {
			if h < n && hits[h] == e {
				h++
				continue
			}
			order = append(order, e)
		}
		copy(active, order)
		hits = order
	}
	p.tmp = hits[:0]
}

// end releases the experts of a finished Forward call and evicts down to
// the budget.
func (p *pager) end(base int, active []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range active {
		p.ents[base+int(e)].inUse--
	}
	p.evictToBudget()
}

// prefetch records the prediction for layer (table base) and issues
// WILLNEED for the predicted experts not resident. It replaces an earlier
// prediction for the layer not consumed yet.
func (p *pager) prefetch(layer, base int, ids []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := &p.pred[layer]
	p.clearPrediction(pr)
	for _, e := range ids {
		i := int32(base + int(e))
		en := &p.ents[i]
		if en.predicted {
			continue
		}
		en.predicted = true
		pr.ids = append(pr.ids, i)
		if en.resident {
			continue
		}
		p.st.PrefetchIssued++
		p.st.PrefetchBytes += en.bytes
		en.prefetched = true
		p.admit(i)
		// Scored as of now but without a use: an unused prefetch is the
		// first to go once its layer has run.
		p.decay(en)
		en.last = p.step
		p.rescore(i)
	}
}

func (p *pager) clearPrediction(pr *layerPred) {
	for _, i := range pr.ids {
		p.ents[i].predicted = false
	}
	pr.ids = pr.ids[:0]
}

// load makes experts resident as if used now (Store.Load).
func (p *pager) load(base int, ids []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.step++
	for _, e := range ids {
		i := int32(base + e)
		if !p.ents[i].resident {
			p.admit(i)
		}
		p.touch(i)
	}
	p.evictToBudget()
}

// release evicts experts and unpins them (Store.Release).
func (p *pager) release(base int, ids []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range ids {
		i := int32(base + e)
		en := &p.ents[i]
		if en.pinned {
			en.pinned = false
			p.pinned -= en.bytes
			if en.resident {
				p.push(i)
			}
		}
		if en.resident && en.inUse == 0 {
			p.remove(i)
			p.evict(i)
		}
	}
}

// admit makes entry i resident: books its bytes and asks for its pages.
func (p *pager) admit(i int32) {
	en := &p.ents[i]
	en.resident = true
	p.resident += en.bytes
	p.peak = max(p.peak, p.resident)
	if !en.pinned {
		p.push(i)
	}
	p.willNeed(en)
}

func (p *pager) willNeed(en *entry) {
	t := time.Now()
	p.adv.willNeed(en)
	p.st.AdviseTime += time.Since(t)
}

// evict drops entry i, which is resident and out of the heap.
func (p *pager) evict(i int32) {
	en := &p.ents[i]
	en.resident, en.prefetched = false, false
	p.resident -= en.bytes
	p.st.Evictions++
	p.st.EvictedBytes += en.bytes
	t := time.Now()
	p.adv.evict(en)
	p.st.AdviseTime += time.Since(t)
}

// evictToBudget evicts the lowest-scored experts that no Forward is using
// and no outstanding prediction names until the resident bytes fit.
func (p *pager) evictToBudget() {
	skipped := p.tmp[:0]
	for p.resident > p.cfg.Budget && len(p.heap) > 0 {
		i := p.pop()
		if en := &p.ents[i]; en.inUse > 0 || en.predicted {
			skipped = append(skipped, i)
			continue
		}
		p.evict(i)
	}
	for _, i := range skipped {
		p.push(i)
	}
	p.tmp = skipped[:0]
}

// decay brings an LRFU entry's crf to the current step.
func (p *pager) decay(en *entry) {
	if en.crf != 0 && en.last < p.step {
		en.crf *= math.Exp2(-p.lambda * float64(p.step-en.last))
	}
}

// touch records a use of entry i now.
func (p *pager) touch(i int32) {
	en := &p.ents[i]
	en.count++
	p.decay(en)
	en.crf++
	en.last = p.step
	p.rescore(i)
}

// rescore recomputes entry i's score and restores the heap order.
func (p *pager) rescore(i int32) {
	en := &p.ents[i]
	switch p.cfg.Policy {
	case PolicyLRU:
		en.score = float64(en.last)
	case PolicyLFU:
		en.score = float64(en.count)
	default:
		// crf * 2^(-lambda*(now-last)) ranks like log2(crf) + lambda*last
		// at any common now, so scores of untouched entries stay valid.
		en.score = math.Log2(en.crf) + p.lambda*float64(en.last)
	}
	if en.heapIdx >= 0 {
		p.fix(int(en.heapIdx))
	}
}

// stats returns a copy of the counters.
func (p *pager) stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.ResidentBytes, st.PeakResidentBytes, st.PinnedBytes = p.resident, p.peak, p.pinned
	for i := range p.ents {
		if p.ents[i].resident {
			st.ResidentExperts++
		}
	}
	return st
}

// The eviction heap: a binary min-heap of table indices ordered by
// (score, last), each entry knowing its position.

func (p *pager) less(a, b int32) bool {
	x, y := &p.ents[a], &p.ents[b]
	if x.score != y.score {
		return x.score < y.score
	}
	return x.last < y.last
}

func (p *pager) swap(i, j int) {
	h := p.heap
	h[i], h[j] = h[j], h[i]
	p.ents[h[i]].heapIdx = int32(i)
	p.ents[h[j]].heapIdx = int32(j)
}

func (p *pager) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !p.less(p.heap[j], p.heap[i]) {
			break
		}
		p.swap(i, j)
		j = i
	}
}

func (p *pager) down(i int) bool {
	i0, n := i, len(p.heap)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && p.less(p.heap[r], p.heap[j]) {
			j = r
		}
		if !p.less(p.heap[j], p.heap[i]) {
			break
		}
		p.swap(i, j)
		i = j
	}
	return i > i0
}

func (p *pager) push(i int32) {
	if p.ents[i].heapIdx >= 0 {
		return
	}
	p.ents[i].heapIdx = int32(len(p.heap))
	p.heap = append(p.heap, i)
	p.up(len(p.heap) - 1)
}

func (p *pager) pop() int32 {
	n := len(p.heap) - 1
	p.swap(0, n)
	i := p.heap[n]
	p.heap = p.heap[:n]
	p.ents[i].heapIdx = -1
	if n > 0 {
		p.down(0)
	}
	return i
}

func (p *pager) remove(i int32) {
	j := int(p.ents[i].heapIdx)
	if j < 0 {
		return
	}
	n := len(p.heap) - 1
	if j != n {
		p.swap(j, n)
	}
	p.heap = p.heap[:n]
	p.ents[i].heapIdx = -1
	if j != n {
		p.fix(j)
	}
}

func (p *pager) fix(j int) {
	if !p.down(j) {
		p.up(j)
	}
}

// errNoMapping is returned for a file without mappings to advise.
var errNoMapping = errors.New("experts: the file is not memory-mapped")
