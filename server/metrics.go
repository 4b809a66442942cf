package server

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inference-x/inference-x/server/scheduler"
)

// Metrics are the server's Prometheus metrics, registered on an injected
// Registerer. Names follow ix_<subsystem>_<name>_<unit>[_total].
//
// *Metrics is the scheduler's Observer and the router's (ExpertObserver).
// Occupancy gauges (slots, KV cache, active sequences) read the
// scheduler when scraped, so they are never stale.
type Metrics struct {
	requests   *prometheus.CounterVec   // endpoint, code
	duration   *prometheus.HistogramVec // endpoint
	ttft       prometheus.Histogram
	tpot       prometheus.Histogram
	e2e        prometheus.Histogram
	promptToks prometheus.Counter
	genToks    prometheus.Counter
	tokRate    prometheus.Gauge
	waiting    prometheus.Gauge
	step       prometheus.Histogram
	stepRows   prometheus.Histogram
	occupancy  []prometheus.Collector // gauge funcs over the scheduler's Stats

	expertCalls *prometheus.CounterVec   // node
	expertRows  *prometheus.CounterVec   // node
	rpc         *prometheus.HistogramVec // node
	rpcErrors   *prometheus.CounterVec   // node
	failovers   *prometheus.CounterVec   // node
	ejections   *prometheus.CounterVec   // node
	ejected     *prometheus.GaugeVec     // node

	stats atomic.Pointer[func() scheduler.Stats]

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
		tpot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "server", Name: "time_per_output_token_seconds",
			Help:    "Mean time between generated tokens after the first, per request.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "server", Name: "e2e_request_latency_seconds",
			Help: "Time from a generation request's arrival to its last token (completed generations).", Buckets: secs,
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
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "server", Name: "requests_waiting_ready",
			Help: "Requests waiting for every routed expert to be covered (--wait-ready).",
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
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "router", Name: "failovers_total",
			Help: "Expert terms of failed calls sent to another replica (or run locally), by the node that failed.",
		}, []string{"node"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "router", Name: "ejections_total",
			Help: "Times a node was ejected from routing after a failed call (health-probed until it answers).",
		}, []string{"node"}),
		ejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "router", Name: "node_ejected",
			Help: "1 while a node is ejected from routing, 0 once a health probe readmitted it.",
		}, []string{"node"}),
	}
	gauge := func(sub, name, help string, f func(scheduler.Stats) int) {
		m.occupancy = append(m.occupancy, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: sub, Name: name, Help: help,
		}, func() float64 {
			if p := m.stats.Load(); p != nil {
				return float64(f((*p)()))
			}
			return 0
		}))
	}
	gauge("server", "queue_depth", "Requests waiting for a free slot.", func(s scheduler.Stats) int { return s.Queued })
	gauge("server", "active_sequences", "Sequences holding a slot.", func(s scheduler.Stats) int { return s.Busy })
	gauge("scheduler", "slots_busy", "Slots holding a sequence.", func(s scheduler.Stats) int { return s.Busy })
	gauge("scheduler", "slots_idle", "Free slots.", func(s scheduler.Stats) int { return s.Slots - s.Busy })
	gauge("scheduler", "kv_cache_used_tokens", "KV cache positions filled, over all slots.", func(s scheduler.Stats) int { return s.KVTokens })
	gauge("scheduler", "kv_cache_capacity_tokens", "KV cache positions of all slots (slots x context).", func(s scheduler.Stats) int { return s.KVCapacity })
	if reg != nil {
		for _, c := range append([]prometheus.Collector{m.requests, m.duration, m.ttft, m.tpot, m.e2e, m.promptToks, m.genToks, m.tokRate, m.waiting,
			m.step, m.stepRows, m.expertCalls, m.expertRows, m.rpc, m.rpcErrors, m.failovers, m.ejections, m.ejected}, m.occupancy...) {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Watch makes the occupancy gauges read stats (the scheduler's Stats).
func (m *Metrics) Watch(stats func() scheduler.Stats) { m.stats.Store(&stats) }

// Step implements scheduler.Observer.
func (m *Metrics) Step(prompt, decode, seqs int, d time.Duration) {
	m.step.Observe(d.Seconds())
	m.stepRows.Observe(float64(prompt + decode))
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

// Queue implements scheduler.Observer; ix_server_queue_depth reads the
// scheduler's Stats when scraped instead.
func (m *Metrics) Queue(int) {}

// Idle implements scheduler.Observer: no sequence runs, so the generation
// speed is 0 (the moving average starts afresh with the next request).
func (m *Metrics) Idle() {
	m.mu.Lock()
	m.rate = 0
	m.tokRate.Set(0)
	m.mu.Unlock()
}

// ExpertObserver receives the router's per-node expert calls
// (router.Observer): once per RPC attempt and local run, once per
// failover, ejection and readmission; safe for concurrent use,
// non-blocking.
type ExpertObserver interface {
	ExpertCall(node string, rows int, d time.Duration, err error)
	Failover(node string, terms int)
	Ejected(node string, ejected bool, backoff time.Duration)
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

// Failover implements ExpertObserver.
func (m *Metrics) Failover(node string, terms int) {
	m.failovers.WithLabelValues(node).Add(float64(terms))
}

// Ejected implements ExpertObserver.
func (m *Metrics) Ejected(node string, ejected bool, _ time.Duration) {
	if ejected {
		m.ejections.WithLabelValues(node).Inc()
		m.ejected.WithLabelValues(node).Set(1)
		return
	}
	m.ejected.WithLabelValues(node).Set(0)
}

// request records a finished generation: time to first token (when one
// came), mean time per output token after it, end-to-end latency.
func (m *Metrics) request(ttft, total time.Duration, generated int, completed bool) {
	if generated > 0 {
		m.ttft.Observe(ttft.Seconds())
	}
	if generated > 1 {
		m.tpot.Observe((total - ttft).Seconds() / float64(generated-1))
	}
	if completed {
		m.e2e.Observe(total.Seconds())
	}
}
