package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/bytesize"
)

// simulate replays expert traces through each policy at each budget and
// prints the demand hit rates and bytes read per token, with Belady's
// optimum as the bound.
func simulate(w io.Writer, o *options) error {
	f, err := gguf.Open(o.model)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := experts.NewStore(f, experts.StoreConfig{Threads: 1})
	if err != nil {
		return err
	}
	layers := st.SimLayers()
	st.Close()
	var total int64
	first := -1
	for l, sl := range layers {
		total += int64(sl.Experts) * sl.Bytes
		if sl.Experts > 0 && first < 0 {
			first = l
		}
	}
	var budgets []int64
	for _, b := range strings.Split(o.budgets, ",") {
		b = strings.TrimSpace(b)
		if p, ok := strings.CutSuffix(b, "%"); ok {
			v, err := strconv.ParseFloat(p, 64)
			if err != nil {
				return fmt.Errorf("-budgets: %q", b)
			}
			budgets = append(budgets, int64(v/100*float64(total)))
			continue
		}
		v, err := bytesize.Parse(b)
		if err != nil {
			return fmt.Errorf("-budgets: %w", err)
		}
		budgets = append(budgets, v)
	}
	type policy struct {
		name string
		cfg  func(int64) experts.PagerConfig
	}
	mk := func(p experts.Policy, lambda float64) func(int64) experts.PagerConfig {
		return func(b int64) experts.PagerConfig {
			c := experts.DefaultPagerConfig(b)
			c.Policy, c.Lambda, c.Predict = p, lambda, false
			return c
		}
	}
	policies := []policy{{"lru", mk(experts.PolicyLRU, 0)}, {"lfu", mk(experts.PolicyLFU, 0)}}
	for _, l := range []float64{0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1} {
		policies = append(policies, policy{fmt.Sprintf("lrfu %g", l), mk(experts.PolicyLRFU, l)})
	}
	for _, path := range strings.Split(o.simulate, ",") {
		tf, err := os.Open(path)
		if err != nil {
			return err
		}
		trace, err := experts.ReadTrace(tf)
		tf.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		tokens := 0
		for _, s := range trace {
			if s.Layer == first {
				tokens++
			}
		}
		fmt.Fprintf(w, "\n%s: %d expert calls, %d tokens (calls of layer %d); experts %s in all\n\n", path, len(trace), tokens, first, bytesize.Format(total))
		fmt.Fprint(w, "| policy |")
		for _, b := range budgets {
			fmt.Fprintf(w, " %s (%.0f%%) |", bytesize.Format(b), 100*float64(b)/float64(total))
		}
		fmt.Fprint(w, "\n|---|")
		for range budgets {
			fmt.Fprint(w, "---|")
		}
		fmt.Fprintln(w)
		cell := func(s experts.Stats) string {
			// Pinned experts are read at open: their bytes count as read.
			return fmt.Sprintf(" %.1f%% hits, %s/token |", 100*s.HitRate(), bytesize.Format((s.MissBytes+s.PinnedBytes)/int64(max(tokens, 1))))
		}
		for _, p := range policies {
			fmt.Fprintf(w, "| %s |", p.name)
			for _, b := range budgets {
				s, err := experts.Simulate(trace, layers, p.cfg(b))
				if err != nil {
					return err
				}
				fmt.Fprint(w, cell(s))
			}
			fmt.Fprintln(w)
		}
		// Pinning the experts the whole trace uses most (an oracle: a real
		// run knows only the past) for a share of the budget, LRU or LRFU
		// for the rest.
		for _, share := range []float64{0.5, 0.8} {
			for _, base := range []policy{policies[0], policies[4]} {
				fmt.Fprintf(w, "| %s + pin hottest %.0f%% (oracle) |", base.name, 100*share)
				for _, b := range budgets {
					c := base.cfg(b)
					c.Pin = hottest(trace, layers, int64(share*float64(b)))
					s, err := experts.Simulate(trace, layers, c)
					if err != nil {
						return err
					}
					fmt.Fprint(w, cell(s))
				}
				fmt.Fprintln(w)
			}
		}
		fmt.Fprint(w, "| optimal (Belady) |")
		for _, b := range budgets {
			s, err := experts.SimulateOptimal(trace, layers, b)
			if err != nil {
				return err
			}
			fmt.Fprint(w, cell(s))
		}
		fmt.Fprintln(w)
	}
	return nil
}

// hottest returns the most used experts of trace that fit in budget.
func hottest(trace []experts.TraceStep, layers []experts.SimLayer, budget int64) map[int][]int {
	type key struct{ l, e int }
	count := map[key]int{}
	for _, s := range trace {
		for _, e := range s.Experts {
			count[key{s.Layer, int(e)}]++
		}
	}
	keys := make([]key, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if count[keys[i]] != count[keys[j]] {
			return count[keys[i]] > count[keys[j]]
		}
		return keys[i].l < keys[j].l || keys[i].l == keys[j].l && keys[i].e < keys[j].e
	})
	pins := map[int][]int{}
	for _, k := range keys {
		if b := layers[k.l].Bytes; b <= budget {
			budget -= b
			pins[k.l] = append(pins[k.l], k.e)
		}
	}
	return pins
}
