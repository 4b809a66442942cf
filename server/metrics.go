package server

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus metrics, registered on an injected
// Registerer. Names follow ix_<subsystem>_<name>_<unit>[_total].
//
// *Metrics is the scheduler's Observer, and it implements ExpertObserver
// and PagerObserver, which the router and the pager feed once they exist.
type Metrics struct {
	requests   *prometheus.CounterVec   // endpoint, code
	duration   *prometheus.HistogramVec // endpoint
	ttft       prometheus.Histogram
	promptToks prometheus.Counter
	genToks    prometheus.Counter
	tokRate    prometheus.Gauge
	queue      prometheus.Gauge
	active     prometheus.Gauge
	step       prometheus.Histogram
	stepRows   prometheus.Histogram

	expertCalls *prometheus.CounterVec   // node
	expertRows  *prometheus.CounterVec   // node
	rpc         *prometheus.HistogramVec // node
	rpcErrors   *prometheus.CounterVec   // node
	pagerHits   prometheus.Counter
	pagerMisses prometheus.Counter

	mu   sync.Mutex
	rate float64 // EWMA of generated tokens per second
}

// NewMetrics creates the metric families and registers them on reg (nil:
// not registered, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	secs := prometheus.ExponentialBuckets(0.001, 2, 16) // 1 ms .. 33 s
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "server", Name: "requests_total",
			Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "server", Name: "request_duration_seconds",
			Help: "HTTP request duration by endpoint (whole stream for streaming requests).", Buckets: secs,
		}, []string{"endpoint"}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "server", Name: "time_to_first_token_seconds",
			Help: "Time from a generation request's arrival to its first generated token.", Buckets: secs,
		}),
		promptToks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "server", Name: "prompt_tokens_total",
			Help: "Prompt tokens evaluated.",
		}),
		genToks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "server", Name: "generated_tokens_total",
			Help: "Tokens generated.",
		}),
		tokRate: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "server", Name: "generation_tokens_per_second",
			Help: "Aggregate generation speed over all sequences (moving average over steps).",
		}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "server", Name: "queue_depth",
			Help: "Requests waiting for a free slot.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "server", Name: "active_sequences",
			Help: "Sequences in the last batch step.",
		}),
		step: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "scheduler", Name: "step_duration_seconds",
			Help: "Duration of one batched forward step.", Buckets: secs,
		}),
		stepRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "scheduler", Name: "step_tokens",
			Help:    "Tokens (prompt plus decode rows) in one batched forward step.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		expertCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "router", Name: "expert_calls_total",
			Help: "Batched expert calls (one per node per MoE layer per step) by node.",
		}, []string{"node"}),
		expertRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "router", Name: "expert_rows_total",
			Help: "Token rows sent in expert calls, by node.",
		}, []string{"node"}),
		rpc: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "router", Name: "rpc_duration_seconds",
			Help:    "Latency of expert calls by node (local calls: node \"local\").",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"node"}),
		rpcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "router", Name: "rpc_errors_total",
			Help: "Failed expert calls by node.",
		}, []string{"node"}),
		pagerHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "pager", Name: "hits_total",
			Help: "Expert uses whose weights were resident.",
		}),
		pagerMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "pager", Name: "misses_total",
			Help: "Expert uses that had to page weights in.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.ttft, m.promptToks, m.genToks, m.tokRate,
			m.queue, m.active, m.step, m.stepRows, m.expertCalls, m.expertRows, m.rpc, m.rpcErrors, m.pagerHits, m.pagerMisses} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Step implements scheduler.Observer.
func (m *Metrics) Step(prompt, decode, seqs int, d time.Duration) {
	m.step.Observe(d.Seconds())
	m.stepRows.Observe(float64(prompt + decode))
	m.active.Set(float64(seqs))
	m.promptToks.Add(float64(prompt))
	m.genToks.Add(float64(decode))
	if s := d.Seconds(); s > 0 && decode > 0 {
		m.mu.Lock()
		r := float64(decode) / s
		if m.rate == 0 || math.IsNaN(m.rate) {
			m.rate = r
		} else {
			m.rate += 0.1 * (r - m.rate)
		}
		m.tokRate.Set(m.rate)
		m.mu.Unlock()
	}
}

// Queue implements scheduler.Observer.
func (m *Metrics) Queue(depth int) { m.queue.Set(float64(depth)) }

// ExpertObserver receives the router's per-node expert calls. The router
// (issue 8) calls it once per RPC; implementations are safe for
// concurrent use and do not block.
type ExpertObserver interface {
	ExpertCall(node string, rows int, d time.Duration, err error)
}

// PagerObserver receives the expert pager's residency outcomes; safe for
// concurrent use, non-blocking.
type PagerObserver interface {
	PagerAccess(hits, misses int)
}

// ExpertCall implements ExpertObserver.
func (m *Metrics) ExpertCall(node string, rows int, d time.Duration, err error) {
	m.expertCalls.WithLabelValues(node).Inc()
	m.expertRows.WithLabelValues(node).Add(float64(rows))
	m.rpc.WithLabelValues(node).Observe(d.Seconds())
	if err != nil {
		m.rpcErrors.WithLabelValues(node).Inc()
	}
}

// PagerAccess implements PagerObserver.
func (m *Metrics) PagerAccess(hits, misses int) {
	m.pagerHits.Add(float64(hits))
	m.pagerMisses.Add(float64(misses))
}
