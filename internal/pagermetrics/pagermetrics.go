// Package pagermetrics exports an expert store's counters
// (experts.Stats: the pager's residency, hits, misses, evictions and the
// bytes read from storage) as Prometheus metrics named ix_pager_*, read
// at scrape time. The expert node and the coordinator (local experts)
// both use it, so the names are the same everywhere.
package pagermetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/inference-x/inference-x/experts"
)

// Collector is a prometheus.Collector over a store's Stats.
type Collector struct {
	stats func() experts.Stats
}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName("ix", "pager", name), help, nil, nil)
}

var (
	budget        = desc("budget_bytes", "Budget for resident expert bytes (--expert-mem).")
	resident      = desc("resident_bytes", "Expert bytes the pager holds resident against its budget.")
	peak          = desc("peak_resident_bytes", "Highest resident expert bytes since the store opened.")
	residentExp   = desc("resident_experts", "Experts resident.")
	pinned        = desc("pinned_bytes", "Resident expert bytes pinned (not evictable).")
	expertBytes   = desc("expert_bytes", "Bytes of all held experts, resident or not.")
	hits          = desc("hits_total", "Expert uses whose weights were resident.")
	misses        = desc("misses_total", "Expert uses that had to page weights in.")
	hitBytes      = desc("hit_bytes_total", "Bytes of the experts of resident uses.")
	missBytes     = desc("miss_bytes_total", "Bytes of the experts of uses that had to page in.")
	evictions     = desc("evictions_total", "Experts evicted to stay under the budget.")
	evictedBytes  = desc("evicted_bytes_total", "Bytes of the experts evicted.")
	prefetches    = desc("prefetches_total", "Predicted experts prefetched (not resident when predicted).")
	prefetchHits  = desc("prefetch_hits_total", "Expert uses served by a prefetch.")
	prefetchBytes = desc("prefetch_bytes_total", "Bytes prefetched.")
	adviseSecs    = desc("advise_seconds_total", "Time spent in madvise/fadvise calls.")
	readBytes     = desc("read_bytes_total", "Bytes this process read from storage since the store opened (/proc/self/io; all reads, not only experts).")
)

// New returns a collector that calls stats at every scrape (for example
// (*experts.Store).Stats). Counters are Prometheus counters, the rest
// gauges; ix_pager_read_bytes_total is absent where /proc/self/io is not.
func New(stats func() experts.Stats) *Collector { return &Collector{stats: stats} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{budget, resident, peak, residentExp, pinned, expertBytes, hits, misses, hitBytes,
		missBytes, evictions, evictedBytes, prefetches, prefetchHits, prefetchBytes, adviseSecs, readBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(budget, float64(st.Budget))
	gauge(resident, float64(st.ResidentBytes))
	gauge(peak, float64(st.PeakResidentBytes))
	gauge(residentExp, float64(st.ResidentExperts))
	gauge(pinned, float64(st.PinnedBytes))
	gauge(expertBytes, float64(st.ExpertBytes))
	counter(hits, float64(st.Hits))
	counter(misses, float64(st.Misses))
	counter(hitBytes, float64(st.HitBytes))
	counter(missBytes, float64(st.MissBytes))
	counter(evictions, float64(st.Evictions))
	counter(evictedBytes, float64(st.EvictedBytes))
	counter(prefetches, float64(st.PrefetchIssued))
	counter(prefetchHits, float64(st.PrefetchHits))
	counter(prefetchBytes, float64(st.PrefetchBytes))
	counter(adviseSecs, st.AdviseTime.Seconds())
	if st.ReadBytes >= 0 {
		counter(readBytes, float64(st.ReadBytes))
	}
}
