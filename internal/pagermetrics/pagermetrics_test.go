package pagermetrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/pagermetrics"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/router"
)

// TestCollectorFollowsTheStore runs a real model's experts under a pager
// and checks the scraped counters against the store's own Stats.
func TestCollectorFollowsTheStore(t *testing.T) {
	f, err := gguf.Open(testenv.Shared(t, "testdata/models/deepseek2-v3.Q8_0.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := router.InfoFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg := experts.DefaultPagerConfig(64 << 20)
	cfg.Predict = false
	st, err := experts.NewLocal(f, experts.LocalConfig{Threads: 1, Pager: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := prometheus.NewPedanticRegistry() // checks Describe against Collect
	reg.MustRegister(pagermetrics.New(st.Stats))
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 16 {
		t.Fatalf("gathered %d metrics, err %v", n, err)
	}
	get := func(name string) float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == name {
				m := f.GetMetric()[0]
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	if v := get("ix_pager_budget_bytes"); v != 64<<20 {
		t.Errorf("budget %v", v)
	}
	uses := func() float64 { return get("ix_pager_hits_total") + get("ix_pager_misses_total") }
	before := uses()
	layer := info.MoELayers[0]
	b := experttest.Batch(1, 2, info.ExpertsUsed, info.Embd, info.Experts, gguf.TypeF32)
	out := make([]float32, b.N*info.Embd)
	for range 2 {
		if err := st.Forward(context.Background(), layer, b, out); err != nil {
			t.Fatal(err)
		}
	}
	s := st.Stats()
	if got, want := uses(), float64(s.Hits+s.Misses); got != want || got <= before {
		t.Errorf("hits+misses scraped %v (before %v), Stats says %v", got, before, want)
	}
	if get("ix_pager_hits_total") == 0 {
		t.Error("the second Forward of the same experts hit nothing")
	}
	if v := get("ix_pager_resident_bytes"); v <= 0 || v != float64(st.Stats().ResidentBytes) {
		t.Errorf("resident bytes %v, Stats %d", v, st.Stats().ResidentBytes)
	}
}
