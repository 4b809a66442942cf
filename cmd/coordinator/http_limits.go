package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/server/connlimit"
)

// HTTPLimits are serve's bounds on what a client may hold: how long the
// request headers and body may take to arrive, how long a response write
// may stall, how long a keep-alive connection may idle, and how many
// connections may be open (package connlimit closes untrusted ones first
// when the limit is reached).
type HTTPLimits struct {
	HeaderTimeout time.Duration
	Timeout       time.Duration // --timeout / -to: body read and write stall
	IdleTimeout   time.Duration
	MaxConns      int
}

// defaultMaxConns is --max-connections' default, lowered to fit the
// descriptor limit (fdReserve descriptors stay for model files, expert
// node connections and gossip).
const (
	defaultMaxConns = 1024
	fdReserve       = 128
)

// AddFlags registers the flags on f.
func (h *HTTPLimits) AddFlags(f *pflag.FlagSet, timeout time.Duration) {
	f.DurationVar(&h.HeaderTimeout, "header-timeout", 10*time.Second, "longest wait for a request's headers (connections sending them slower are closed)")
	h.Timeout = timeout
	f.Var((*secondsFlag)(&h.Timeout), "timeout",
		"read/write timeout (llama-server -to/--timeout; seconds or a duration): longest wait for a request body after its headers (then 408), and for one response write a client does not read; never bounds a stream")
	f.DurationVar(&h.IdleTimeout, "idle-timeout", 2*time.Minute, "how long a keep-alive connection may wait for its next request")
	f.IntVar(&h.MaxConns, "max-connections", defaultMaxConns,
		fmt.Sprintf("most HTTP connections open at once (lowered to the descriptor limit minus %d); at the limit the oldest unauthenticated connection is closed", fdReserve))
}

// Validate checks the flags.
func (h *HTTPLimits) Validate() error {
	switch {
	case h.HeaderTimeout <= 0:
		return cli.Usagef("--header-timeout %v must be > 0", h.HeaderTimeout)
	case h.Timeout < 0:
		return cli.Usagef("--timeout %v must be >= 0 (0: no limit)", h.Timeout)
	case h.IdleTimeout <= 0:
		return cli.Usagef("--idle-timeout %v must be > 0", h.IdleTimeout)
	case h.MaxConns < 1:
		return cli.Usagef("--max-connections %d must be >= 1", h.MaxConns)
	}
	return nil
}

// apply sets the timeouts on s and installs a connection limiter, which
// the listener must be wrapped with (Limiter.Listener).
func (h *HTTPLimits) apply(s *http.Server, log *slog.Logger) *connlimit.Limiter {
	s.ReadHeaderTimeout = h.HeaderTimeout
	s.IdleTimeout = h.IdleTimeout
	// No ReadTimeout or WriteTimeout: they would bound whole streams. The
	// handler sets per-request deadlines from --timeout instead.
	n := h.MaxConns
	if fds, ok := openFileLimit(); ok && fds-fdReserve < uint64(n) {
		low := 16
		if fds > fdReserve+16 {
			low = int(fds - fdReserve)
		}
		log.Warn("--max-connections lowered to fit the open file limit", "max_connections", n, "nofile", fds, "now", low)
		n = low
	}
	l := connlimit.New(n)
	l.Install(s)
	return l
}

// secondsFlag is a duration given as whole seconds (llama-server's
// --timeout N) or with a unit (200ms, 2m).
type secondsFlag time.Duration

func (d *secondsFlag) String() string { return time.Duration(*d).String() }
func (d *secondsFlag) Type() string   { return "duration" }

func (d *secondsFlag) Set(s string) error {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*d = secondsFlag(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is neither seconds nor a duration (60, 90s, 2m)", s)
	}
	*d = secondsFlag(v)
	return nil
}
