package experts

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TraceStep is one Forward call of a recorded run (StoreConfig.Trace):
// the layer and the experts its batch used.
type TraceStep struct {
	Layer   int
	Experts []int32
}

// ReadTrace parses a trace written through StoreConfig.Trace.
func ReadTrace(r io.Reader) ([]TraceStep, error) {
	var out []TraceStep
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for n := 1; sc.Scan(); n++ {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		l, err := strconv.Atoi(fs[0])
		if err != nil || l < 0 {
			return nil, fmt.Errorf("experts: trace line %d: bad layer %q", n, fs[0])
		}
		st := TraceStep{Layer: l, Experts: make([]int32, 0, len(fs)-1)}
		for _, f := range fs[1:] {
			e, err := strconv.ParseInt(f, 10, 32)
			if err != nil || e < 0 {
				return nil, fmt.Errorf("experts: trace line %d: bad expert %q", n, f)
			}
			st.Experts = append(st.Experts, int32(e))
		}
		out = append(out, st)
	}
	return out, sc.Err()
}

// SimLayer is one layer of a simulated model: its number of experts and
// the bytes of each (zero Experts: no routed experts).
type SimLayer struct {
	Experts int
	Bytes   int64
}

// SimLayers returns the expert layout of a Store's file for Simulate.
func (s *Store) SimLayers() []SimLayer {
	out := make([]SimLayer, len(s.layers))
	for l, ly := range s.layers {
		if ly != nil {
			out[l] = SimLayer{Experts: len(ly.held), Bytes: ly.bytes(0)}
		}
	}
	return out
}

// Simulate replays trace through the pager's bookkeeping under cfg
// (policy, budget, pins; no prediction, no system calls) and returns its
// counters: the demand hit rate and the bytes each policy would read.
func Simulate(trace []TraceStep, layers []SimLayer, cfg PagerConfig) (Stats, error) {
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	lays, err := simLayout(trace, layers)
	if err != nil {
		return Stats{}, err
	}
	p, err := newPager(lays, cfg, nopAdvisor{})
	if err != nil {
		return Stats{}, err
	}
	active := make([]int32, 0, 64)
	for _, st := range trace {
		active = append(active[:0], st.Experts...)
		base := lays[st.Layer].base
		p.begin(st.Layer, base, active)
		p.end(base, active)
	}
	return p.stats(), nil
}

// SimulateOptimal replays trace with Belady's MIN: on a miss over the
// budget it evicts the resident experts needed again furthest in the
// future. No real policy reads less; it bounds what a better policy could
// gain.
func SimulateOptimal(trace []TraceStep, layers []SimLayer, budget int64) (Stats, error) {
	lays, err := simLayout(trace, layers)
	if err != nil {
		return Stats{}, err
	}
	total := 0
	for _, l := range lays {
		if l != nil {
			total = max(total, l.base+l.n)
		}
	}
	size := make([]int64, total)
	for _, l := range lays {
		if l != nil {
			for e := 0; e < l.n; e++ {
				_, size[l.base+e] = l.spans(e)
			}
		}
	}
	// next[k][j]: the step of the next use of trace[k].Experts[j] after k.
	nextUse := make([][]int, len(trace))
	last := make([]int, total)
	for i := range last {
		last[i] = len(trace)
	}
	for k := len(trace) - 1; k >= 0; k-- {
		st := trace[k]
		nextUse[k] = make([]int, len(st.Experts))
		for j, e := range st.Experts {
			i := lays[st.Layer].base + int(e)
			nextUse[k][j] = last[i]
			last[i] = k
		}
	}
	// A max-heap of resident experts by next use, with lazy deletion.
	type item struct{ next, idx int }
	var heap []item
	push := func(it item) {
		heap = append(heap, it)
		for j := len(heap) - 1; j > 0; {
			i := (j - 1) / 2
			if heap[i].next >= heap[j].next {
				break
			}
			heap[i], heap[j] = heap[j], heap[i]
			j = i
		}
	}
	pop := func() item {
		top := heap[0]
		n := len(heap) - 1
		heap[0] = heap[n]
		heap = heap[:n]
		for i := 0; ; {
			j := 2*i + 1
			if j >= n {
				break
			}
			if j+1 < n && heap[j+1].next > heap[j].next {
				j++
			}
			if heap[i].next >= heap[j].next {
				break
			}
			heap[i], heap[j] = heap[j], heap[i]
			i = j
		}
		return top
	}
	resident := make([]bool, total)
	nextOf := make([]int, total) // current next use of resident experts
	var st Stats
	st.Budget = budget
	var used int64
	inUse := make(map[int]bool)
	for k, step := range trace {
		clear(inUse)
		for j, e := range step.Experts {
			i := lays[step.Layer].base + int(e)
			inUse[i] = true
			if resident[i] {
				st.Hits++
				st.HitBytes += size[i]
			} else {
				st.Misses++
				st.MissBytes += size[i]
				resident[i] = true
				used += size[i]
			}
			nextOf[i] = nextUse[k][j]
			push(item{nextOf[i], i})
		}
		var keep []item
		for used > budget && len(heap) > 0 {
			it := pop()
			if !resident[it.idx] || nextOf[it.idx] != it.next {
				continue // stale
			}
			if inUse[it.idx] {
				keep = append(keep, it)
				continue
			}
			resident[it.idx] = false
			used -= size[it.idx]
			st.Evictions++
			st.EvictedBytes += size[it.idx]
		}
		for _, it := range keep {
			push(it)
		}
		st.PeakResidentBytes = max(st.PeakResidentBytes, used)
	}
	st.ResidentBytes = used
	return st, nil
}

// simLayout checks the trace against layers and lays out the table.
func simLayout(trace []TraceStep, layers []SimLayer) ([]*layerLayout, error) {
	lays := make([]*layerLayout, len(layers))
	base := 0
	for l, sl := range layers {
		if sl.Experts <= 0 {
			continue
		}
		b := sl.Bytes
		lays[l] = &layerLayout{base: base, n: sl.Experts, spans: func(int) ([3]span, int64) { return [3]span{}, b }}
		base += sl.Experts
	}
	for k, st := range trace {
		if st.Layer >= len(lays) || lays[st.Layer] == nil {
			return nil, fmt.Errorf("experts: trace step %d: layer %d has no experts", k, st.Layer)
		}
		seen := map[int32]bool{}
		for _, e := range st.Experts {
			if int(e) >= lays[st.Layer].n || seen[e] {
				return nil, fmt.Errorf("experts: trace step %d: bad or repeated expert %d of layer %d", k, e, st.Layer)
			}
			seen[e] = true
		}
	}
	return lays, nil
}

// nopAdvisor makes no system calls (simulations and tests).
type nopAdvisor struct{}

func (nopAdvisor) willNeed(*entry) {}
func (nopAdvisor) evict(*entry)    {}
func (nopAdvisor) close()          {}
