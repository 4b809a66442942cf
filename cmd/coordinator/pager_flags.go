package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/bytesize"
)

// PagerOptions are the expert pager flags of `coordinator run`.
type PagerOptions struct {
	Mem        string
	Policy     string
	Lambda     float64
	Evict      string
	Predict    bool
	PredictTop int
	NoRandom   bool
	Refresh    bool
	Trace      string

	budget int64 // parsed --expert-mem: > 0 a size, 0 auto, -1 plain mmap
	cfg    experts.PagerConfig
	info   string // how the budget was chosen
}

// AddFlags registers the pager flags.
func (o *PagerOptions) AddFlags(f *pflag.FlagSet) {
	d := experts.DefaultPagerConfig(1)
	f.StringVar(&o.Mem, "expert-mem", "auto",
		"memory for routed experts, e.g. 12Gi, 800Mi (binary: Ki, Mi, Gi, Ti, or KiB..TiB), 12G, 800M (decimal, as Kubernetes: k, M, G, T, or KB..TB); "+
			"auto: available memory minus the dense weights, the KV cache, 128 MiB and room for two layers' top-k experts "+
			"(plain mmap when that holds every expert); "+
			"plain: no pager, the kernel pages the mapped file on its own")
	f.StringVar(&o.Policy, "expert-policy", d.Policy.String(), "pager eviction policy: lrfu, lru or lfu")
	f.Float64Var(&o.Lambda, "expert-lambda", d.Lambda, "lrfu decay per token: a use weighs half after 1/LAMBDA tokens (0: lfu, large: lru)")
	f.StringVar(&o.Evict, "expert-evict", d.Evict.String(),
		"how evicted experts leave memory: drop (MADV_DONTNEED + FADV_DONTNEED), pageout (MADV_PAGEOUT), dontneed, none")
	f.BoolVar(&o.Predict, "expert-predict", d.Predict, "prefetch the next MoE layer's predicted experts while a layer runs")
	f.IntVar(&o.PredictTop, "expert-predict-top", d.PredictTop, "experts predicted per token (0: the model's top-k)")
	f.BoolVar(&o.NoRandom, "expert-no-random", false, "do not MADV_RANDOM the expert tensors (measurements)")
	f.BoolVar(&o.Refresh, "expert-refresh", d.RefreshHits, "MADV_WILLNEED resident experts too before each use (insurance against kernel reclaim)")
	f.StringVar(&o.Trace, "expert-trace", "", "write each MoE layer call's experts to FILE (for policy simulation)")
	f.MarkHidden("expert-no-random")
	f.MarkHidden("expert-trace")
}

// Validate parses the flags.
func (o *PagerOptions) Validate() error {
	switch strings.ToLower(o.Mem) {
	case "", "auto":
		o.budget = 0
	case "plain", "off":
		o.budget = -1
	default:
		n, err := bytesize.Parse(o.Mem)
		if err != nil {
			return fmt.Errorf("--expert-mem: %w", err)
		}
		if n <= 0 {
			return fmt.Errorf("--expert-mem %s: must be positive (or auto, plain)", o.Mem)
		}
		o.budget = n
	}
	o.cfg = experts.DefaultPagerConfig(1)
	var err error
	if o.cfg.Policy, err = experts.ParsePolicy(o.Policy); err != nil {
		return fmt.Errorf("--expert-policy: %w", err)
	}
	if o.cfg.Evict, err = experts.ParseEvict(o.Evict); err != nil {
		return fmt.Errorf("--expert-evict: %w", err)
	}
	o.cfg.Lambda, o.cfg.Predict, o.cfg.PredictTop, o.cfg.NoRandom = o.Lambda, o.Predict, o.PredictTop, o.NoRandom
	o.cfg.RefreshHits = o.Refresh
	return o.cfg.Validate()
}

// openStore opens the expert store for f, or returns nil for a model
// without routed experts. reserve is what the caller allocates besides
// the weights (the KV cache), for the auto budget.
func (o *PagerOptions) openStore(f *gguf.File, threads int, reserve int64, errw io.Writer) (*experts.Store, io.Closer, error) {
	expertBytes, dense := experts.SplitBytes(f)
	if expertBytes == 0 {
		return nil, nil, nil
	}
	cfg := experts.StoreConfig{Threads: threads}
	var closer io.Closer = nopCloser{}
	if o.Trace != "" {
		tf, err := os.Create(o.Trace)
		if err != nil {
			return nil, nil, err
		}
		bw := bufio.NewWriterSize(tf, 1<<20)
		cfg.Trace = bw
		closer = traceCloser{bw, tf}
	}
	switch {
	case o.budget < 0:
		o.info = fmt.Sprintf("plain mmap, no pager (experts %s, dense %s)", bytesize.Format(expertBytes), bytesize.Format(dense))
	default:
		pc := o.cfg
		pc.Budget = o.budget
		if o.budget == 0 {
			b, m, err := experts.DefaultBudget(f, reserve)
			if err != nil {
				closer.Close()
				return nil, nil, fmt.Errorf("--expert-mem auto: %w (give a size)", err)
			}
			pc.Budget = b
			limit := "no cgroup limit"
			if m.Limit > 0 {
				limit = "cgroup limit " + bytesize.Format(m.Limit)
			}
			o.info = fmt.Sprintf("budget %s = available %s (%s) - dense %s - KV %s - heap %s - in flight %s",
				bytesize.Format(b), bytesize.Format(m.Available), limit, bytesize.Format(dense), bytesize.Format(reserve),
				bytesize.Format(experts.BaseReserve), bytesize.Format(experts.InFlightBytes(f)))
			if b >= expertBytes {
				// Everything fits: the pager's advice and books would only
				// cost time (about 0.65 ms per token).
				o.info = fmt.Sprintf("auto %s holds all %s of experts: plain mmap, no pager", o.info, bytesize.Format(expertBytes))
				break
			}
		} else {
			o.info = "budget " + bytesize.Format(pc.Budget)
			if b, m, err := experts.DefaultBudget(f, reserve); err == nil && pc.Budget > b && pc.Budget < expertBytes {
				fmt.Fprintf(errw, "warning: --expert-mem %s is more than the %s that the available %s leaves for experts; "+
					"the kernel will reclaim experts the pager counts as resident\n", bytesize.Format(pc.Budget), bytesize.Format(b), bytesize.Format(m.Available))
			}
		}
		o.info += fmt.Sprintf(" of %s experts; policy %s", bytesize.Format(expertBytes), pc.Policy)
		if pc.Policy == experts.PolicyLRFU {
			o.info += fmt.Sprintf(" (lambda %g)", pc.Lambda)
		}
		o.info += ", evict " + pc.Evict.String()
		if pc.Predict {
			o.info += ", next-layer prediction on"
		}
		cfg.Pager = &pc
	}
	st, err := experts.NewStore(f, cfg)
	if err != nil {
		closer.Close()
		return nil, nil, err
	}
	return st, closer, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

type traceCloser struct {
	w *bufio.Writer
	f *os.File
}

func (t traceCloser) Close() error { return errors.Join(t.w.Flush(), t.f.Close()) }

// printPagerStats prints the store's counters after a run: residency,
// hits and misses, prediction accuracy, disk reads and time per token.
func printPagerStats(w io.Writer, o *PagerOptions, st *experts.Store, promptTokens int, promptTime time.Duration, gen int, genTime time.Duration) {
	if st == nil {
		return
	}
	s := st.Stats()
	fmt.Fprintf(w, "expert store: %s\n", o.info)
	if s.Budget > 0 {
		fmt.Fprintf(w, "  resident    %s in %d experts (peak %s, pinned %s) of %s held\n",
			bytesize.Format(s.ResidentBytes), s.ResidentExperts, bytesize.Format(s.PeakResidentBytes), bytesize.Format(s.PinnedBytes), bytesize.Format(s.ExpertBytes))
		fmt.Fprintf(w, "  uses        %d: hits %d (%.1f%%, %s), misses %d (%s)\n",
			s.Hits+s.Misses, s.Hits, 100*s.HitRate(), bytesize.Format(s.HitBytes), s.Misses, bytesize.Format(s.MissBytes))
		if s.Predicted > 0 {
			fmt.Fprintf(w, "  prediction  precision %.1f%%, recall %.1f%% (%d predicted, %d used, %d needed); prefetched %d (%s), %d served a use; %.1f ms computing it\n",
				100*s.PredictPrecision(), 100*s.PredictRecall(), s.Predicted, s.PredictedUsed, s.PredictNeeded,
				s.PrefetchIssued, bytesize.Format(s.PrefetchBytes), s.PrefetchHits, float64(s.PredictTime.Microseconds())/1000)
		}
		fmt.Fprintf(w, "  evictions   %d (%s); %.1f ms in madvise/fadvise\n",
			s.Evictions, bytesize.Format(s.EvictedBytes), float64(s.AdviseTime.Microseconds())/1000)
	}
	if r, err := st.ResidentBytes(); err == nil {
		fmt.Fprintf(w, "  page cache  %s of expert data resident now (mincore)\n", bytesize.Format(r))
	}
	if s.ReadBytes >= 0 {
		per := ""
		if n := promptTokens + gen; n > 0 {
			per = fmt.Sprintf(", %s per token", bytesize.Format(s.ReadBytes/int64(n)))
		}
		fmt.Fprintf(w, "  disk        read %s since load%s (/proc/self/io read_bytes)\n", bytesize.Format(s.ReadBytes), per)
	}
	if gen > 0 {
		fmt.Fprintf(w, "  time        %.2f ms per generated token, %.2f ms per prompt token; %.1f s in expert calls (%d calls)\n",
			float64(genTime.Microseconds())/1000/float64(gen), float64(promptTime.Microseconds())/1000/float64(max(promptTokens, 1)),
			s.ForwardTime.Seconds(), s.Forwards)
	}
}
