package expertnode

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// metrics are the node's Prometheus metrics (Config.Metrics). Names
// follow ix_node_<name>_<unit>[_total]; service and method label the
// gRPC calls as grpc-prometheus does.
type metrics struct {
	requests *prometheus.CounterVec   // service, method, code
	duration *prometheus.HistogramVec // service, method
	inFlight *prometheus.GaugeVec     // service, method
	rows     prometheus.Histogram
	experts  prometheus.Histogram
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	refused  *prometheus.CounterVec // code
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "node", Name: "rpc_requests_total",
			Help: "gRPC calls handled, by service, method and status code.",
		}, []string{"service", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "node", Name: "rpc_duration_seconds",
			Help:    "Time to handle a gRPC call (from decoded request to response), by service and method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 100 us .. 3.3 s, as the coordinator's
		}, []string{"service", "method"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "node", Name: "rpc_in_flight",
			Help: "gRPC calls being handled now, by service and method.",
		}, []string{"service", "method"}),
		rows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "node", Name: "forward_rows",
			Help:    "Token rows in one Forward call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4096
		}),
		experts: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "ix", Subsystem: "node", Name: "forward_experts",
			Help:    "Expert uses (rows times their experts) in one Forward call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16), // 1 .. 32768
		}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "node", Name: "forward_received_bytes_total",
			Help: "Activation bytes received in Forward calls.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "node", Name: "forward_sent_bytes_total",
			Help: "Sum bytes sent in Forward responses.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "node", Name: "rpc_refused_total",
			Help: "gRPC calls refused from their headers, before their message was read (wrong token, too many pending calls), by code.",
		}, []string{"code"}),
	}
}

// register registers the metrics and the gauges read from s at scrape
// time on reg.
func (m *metrics) register(reg prometheus.Registerer, s *Server) error {
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "ix", Subsystem: "node", Name: "held_experts",
		Help: "Experts held, over all MoE layers.",
	}, func() float64 {
		n := 0
		for _, set := range s.svc.Holdings() {
			if set != nil {
				n += set.Len()
			}
		}
		return float64(n)
	})
	heldBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "ix", Subsystem: "node", Name: "held_bytes",
		Help: "Bytes of the experts held (their weights in the model file).",
	}, func() float64 { return float64(s.cfg.Service.bytes(s.svc.Holdings())) })
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "ix", Subsystem: "node", Name: "ready",
		Help: "1 when the node is ready (what /readyz reports), else 0.",
	}, func() float64 {
		if ok, _ := s.Ready(); ok {
			return 1
		}
		return 0
	})
	// The service's methods show from the first scrape, idle.
	for _, md := range ixv1.ExpertService_ServiceDesc.Methods {
		svc := ixv1.ExpertService_ServiceDesc.ServiceName
		m.inFlight.WithLabelValues(svc, md.MethodName)
		m.duration.WithLabelValues(svc, md.MethodName)
		m.requests.WithLabelValues(svc, md.MethodName, "OK")
	}
	for _, c := range []codes.Code{codes.Unauthenticated, codes.ResourceExhausted} {
		m.refused.WithLabelValues(c.String())
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.rows, m.experts, m.bytesIn, m.bytesOut,
		m.refused, held, heldBytes, ready} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// refuse counts a call refused from its headers (rpc.ServerConfig.Refused).
func (m *metrics) refuse(_ string, code codes.Code) { m.refused.WithLabelValues(code.String()).Inc() }

// intercept is the unary interceptor that feeds the metrics. It runs
// outside the error mapping (rpc.ServerConfig), so the code is the one
// the caller gets; calls refused before their message is read (the token
// check) reach it not: refuse counts those.
func (m *metrics) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	svc, method := splitMethod(info.FullMethod)
	g := m.inFlight.WithLabelValues(svc, method)
	g.Inc()
	defer g.Dec()
	if fr, ok := req.(*ixv1.ForwardRequest); ok {
		var ex, in int
		for _, r := range fr.GetRows() {
			ex += len(r.GetExperts())
			in += len(r.GetActivation())
		}
		m.rows.Observe(float64(len(fr.GetRows())))
		m.experts.Observe(float64(ex))
		m.bytesIn.Add(float64(in))
	}
	start := time.Now()
	resp, err := h(ctx, req)
	m.duration.WithLabelValues(svc, method).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(svc, method, status.Code(err).String()).Inc()
	if fr, ok := resp.(*ixv1.ForwardResponse); ok && err == nil {
		// Read before the codec sends the sums and gives them back.
		m.bytesOut.Add(float64(len(fr.GetSums())))
	}
	return resp, err
}

// splitMethod splits "/ix.v1.ExpertService/Forward" into the service and
// the method.
func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
