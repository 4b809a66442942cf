package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/inference-x/inference-x/experts"
)

// pagerCollector reads the expert pager's statistics at scrape time.
type pagerCollector struct {
	stats                                       func() experts.Stats
	resident, budget, hits, misses, hitB, missB *prometheus.Desc
	read                                        *prometheus.Desc
}

// NewPagerCollector returns the ix_pager_* metrics of an expert store
// (--expert-mem): resident and budget bytes, hits and misses (expert
// uses found resident or not, and their bytes), bytes read from storage.
// stats is typically (*experts.Store).Stats; it is called once per scrape.
func NewPagerCollector(stats func() experts.Stats) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName("ix", "pager", name), help, nil, nil)
	}
	return &pagerCollector{
		stats:    stats,
		resident: d("resident_bytes", "Expert weight bytes the pager holds resident."),
		budget:   d("budget_bytes", "The pager's memory budget for expert weights."),
		hits:     d("hits_total", "Expert uses whose weights were resident."),
		misses:   d("misses_total", "Expert uses that had to page weights in."),
		hitB:     d("hit_bytes_total", "Bytes of the experts used while resident."),
		missB:    d("miss_bytes_total", "Bytes of the experts paged in."),
		read:     d("read_bytes_total", "Bytes this process read from storage since the store opened (/proc/self/io)."),
	}
}

func (c *pagerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.resident, c.budget, c.hits, c.misses, c.hitB, c.missB, c.read} {
		ch <- d
	}
}

func (c *pagerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(c.resident, prometheus.GaugeValue, float64(st.ResidentBytes))
	ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, float64(st.Budget))
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(c.hitB, prometheus.CounterValue, float64(st.HitBytes))
	ch <- prometheus.MustNewConstMetric(c.missB, prometheus.CounterValue, float64(st.MissBytes))
	if st.ReadBytes >= 0 {
		ch <- prometheus.MustNewConstMetric(c.read, prometheus.CounterValue, float64(st.ReadBytes))
	}
}
