package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/internal/buildinfo"
)

// ProbeFlags are the expert node's plaintext side ports: health for the
// kubelet and Prometheus metrics.
type ProbeFlags struct {
	HealthListen  string
	MetricsListen string

	fs *pflag.FlagSet // to tell the default health address from a given one
}

// AddFlags registers the flags.
func (p *ProbeFlags) AddFlags(fs *pflag.FlagSet) {
	p.fs = fs
	fs.StringVar(&p.HealthListen, "health-listen", "127.0.0.1:7079", "plaintext health address (no TLS, no token): gRPC health (grpc.health.v1)\nand HTTP GET /livez and /readyz on one port; :PORT is loopback; off: none")
	fs.StringVar(&p.MetricsListen, "metrics-listen", "", "plaintext HTTP address for Prometheus /metrics; :PORT is loopback; may equal --health-listen; empty: off")
}

// Complete normalises the addresses: "" when off, loopback for ":PORT"
// or a bare port.
func (p *ProbeFlags) Complete() {
	p.HealthListen, p.MetricsListen = sideAddr(p.HealthListen), sideAddr(p.MetricsListen)
}

// Validate checks the addresses.
func (p *ProbeFlags) Validate() error {
	for _, f := range []struct{ name, addr string }{{"--health-listen", p.HealthListen}, {"--metrics-listen", p.MetricsListen}} {
		if f.addr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(f.addr)
		if n, perr := strconv.Atoi(port); err == nil && (perr != nil || n < 0 || n > 65535) {
			err = fmt.Errorf("bad port %q", port)
		}
		if err != nil {
			return fmt.Errorf("%s %q: want HOST:PORT, :PORT or off: %w", f.name, f.addr, err)
		}
	}
	return nil
}

// sideAddr is a side port's listen address: "" for off, 127.0.0.1 when
// no host is given (as the coordinator's --http).
func sideAddr(a string) string {
	a = strings.TrimSpace(a)
	switch {
	case a == "" || strings.EqualFold(a, "off"):
		return ""
	case !strings.Contains(a, ":"):
		return "127.0.0.1:" + a
	case strings.HasPrefix(a, ":"):
		return "127.0.0.1" + a
	}
	return a
}

// sidePorts are the running health and metrics servers.
type sidePorts struct {
	log      *slog.Logger
	probes   *expertnode.Probes   // nil: --health-listen off
	registry *prometheus.Registry // nil: --metrics-listen off
	metrics  *http.Server         // nil: off or on the health port
}

// start listens on the side ports and serves them until close. It runs
// before the model opens: /livez answers at once and /readyz says the
// node is starting.
func (p *ProbeFlags) start(log *slog.Logger) (*sidePorts, error) {
	sp := &sidePorts{log: log}
	var handler http.Handler
	if p.MetricsListen != "" {
		sp.registry = prometheus.NewRegistry()
		sp.registry.MustRegister(buildinfo.Collector(), collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		handler = promhttp.HandlerFor(sp.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
	}
	var lis net.Listener
	if p.HealthListen != "" {
		var err error
		lis, err = net.Listen("tcp", p.HealthListen)
		switch {
		case errors.Is(err, syscall.EADDRINUSE) && (p.fs == nil || !p.fs.Changed("health-listen")):
			// Several nodes on one machine, none told where: the first
			// has the default port; the others serve without.
			log.Warn("the default health address is in use (another expert node here?): no health port; give --health-listen",
				"addr", p.HealthListen)
		case err != nil:
			return nil, fmt.Errorf("--health-listen %s: %w (give another address, or off)", p.HealthListen, err)
		}
	}
	if lis != nil {
		sp.probes = expertnode.NewProbes(log)
		if handler != nil && p.MetricsListen == p.HealthListen {
			sp.probes.Handle("/metrics", handler)
			log.Info("metrics serving on the health port", "addr", lis.Addr().String(), "path", "/metrics")
			handler = nil
		}
		go func() {
			if err := sp.probes.Serve(lis); err != nil {
				log.Error("health server stopped", "err", err)
			}
		}()
	}
	if handler != nil {
		lis, err := net.Listen("tcp", p.MetricsListen)
		if err != nil {
			sp.close()
			return nil, fmt.Errorf("--metrics-listen %s: %w (give another address)", p.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", handler)
		sp.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		log.Info("metrics serving", "addr", lis.Addr().String(), "path", "/metrics")
		go func() {
			if err := sp.metrics.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	return sp, nil
}

// attach makes the probes report srv.
func (sp *sidePorts) attach(srv *expertnode.Server) {
	if sp.probes != nil {
		sp.probes.Attach(srv)
	}
}

// close stops the side ports (after the node has drained).
func (sp *sidePorts) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if sp.probes != nil {
		sp.probes.Shutdown(ctx)
	}
	if sp.metrics != nil {
		sp.metrics.Shutdown(ctx)
	}
}
