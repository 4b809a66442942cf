// Package connlimit bounds the connections an HTTP server holds open and
// sheds the least valuable one when the bound is reached, so that a flood
// of idle or stalled connections (slowloris) cannot exhaust the process's
// descriptors and stop the probes from answering.
//
// A Limiter wraps the listener (Listener) and follows each connection's
// state through http.Server.ConnState and ConnContext (Install sets
// both). A connection is trusted once it has sent a complete request that
// passed authentication (the handler calls Trust). When a connection
// arrives and Max are open, the limiter closes one to make room, in this
// order, the longest in its state first:
//
//  1. untrusted and idle (between requests, or a partial next request);
//  2. untrusted and new (no complete request headers yet: slowloris);
//  3. untrusted and active (a request running that has not authenticated
//     and sent its whole body: a stalled body, a probe);
//  4. trusted and idle (keep-alive connections of real clients).
//
// Trusted connections with a request running (a generation stream) are
// never closed; when every open connection is one, the new connection is
// refused: it is answered 503 with Retry-After and closed.
package connlimit

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limiter tracks the open connections of one HTTP server.
type Limiter struct {
	max int

	mu    sync.Mutex
	conns map[*Conn]struct{}
	tick  uint64 // orders state changes: lower is older

	evicted, refused atomic.Uint64
}

// New returns a limiter holding at most max connections open (max >= 1).
func New(max int) *Limiter {
	if max < 1 {
		max = 1
	}
	return &Limiter{max: max, conns: make(map[*Conn]struct{})}
}

// Max returns the connection limit.
func (l *Limiter) Max() int { return l.max }

// Open returns the number of connections open now (at most Max).
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Shed returns how many connections were closed to make room (evicted)
// and how many new ones were refused.
func (l *Limiter) Shed() (evicted, refused uint64) { return l.evicted.Load(), l.refused.Load() }

// Install makes s report connection states and contexts to l, keeping
// any ConnState and ConnContext s already has.
func (l *Limiter) Install(s *http.Server) {
	prevState, prevCtx := s.ConnState, s.ConnContext
	s.ConnState = func(c net.Conn, st http.ConnState) {
		l.connState(c, st)
		if prevState != nil {
			prevState(c, st)
		}
	}
	s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prevCtx != nil {
			ctx = prevCtx(ctx, c)
		}
		if tc, ok := c.(*Conn); ok {
			ctx = context.WithValue(ctx, connKey{}, tc)
		}
		return ctx
	}
}

// Listener returns ln with l's limit applied to the connections it
// accepts.
func (l *Limiter) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

type connKey struct{}

// Trust marks the connection that carries the request of ctx (a request
// context under an Installed server) as trusted: it has sent a complete
// request that passed authentication. Other contexts are ignored.
func Trust(ctx context.Context) {
	c, ok := ctx.Value(connKey{}).(*Conn)
	if !ok {
		return
	}
	c.l.mu.Lock()
	c.trusted = true
	c.l.mu.Unlock()
}

// Conn is a connection the limiter tracks.
type Conn struct {
	net.Conn
	l       *Limiter
	state   http.ConnState // guarded by l.mu
	since   uint64         // l.tick at the last state change
	trusted bool
	once    sync.Once
}

// Close closes the connection and stops counting it.
func (c *Conn) Close() error {
	c.l.remove(c)
	var err error
	c.once.Do(func() { err = c.Conn.Close() })
	return err
}

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection, making room for it or refusing it
// (and accepting the next) when the limit is reached.
func (ln *listener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := ln.l.admit(c); tc != nil {
			return tc, nil
		}
	}
}

// refusal is what a refused connection is told before it is closed.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n" +
	"Content-Type: text/plain\r\nContent-Length: 30\r\n\r\ntoo many connections, retry.\r\n"

// admit counts c in, closing a victim to make room, or refuses it (nil).
func (l *Limiter) admit(c net.Conn) *Conn {
	l.mu.Lock()
	var victim *Conn
	if len(l.conns) >= l.max {
		victim = l.victimLocked()
		if victim == nil {
			l.mu.Unlock()
			l.refused.Add(1)
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write([]byte(refusal))
			c.Close()
			return nil
		}
		delete(l.conns, victim)
	}
	l.tick++
	tc := &Conn{Conn: c, l: l, state: http.StateNew, since: l.tick}
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		victim.once.Do(func() { victim.Conn.Close() })
	}
	return tc
}

// rank orders the victims: lower goes first; -1 is never closed.
func rank(c *Conn) int {
	switch {
	case !c.trusted && c.state == http.StateIdle:
		return 0
	case !c.trusted && c.state == http.StateNew:
		return 1
	case !c.trusted && c.state == http.StateActive:
		return 2
	case c.trusted && c.state == http.StateIdle:
		return 3
	}
	return -1
}

// victimLocked picks the connection to close: the lowest rank, the
// longest in its state among equals; nil when none may be closed.
func (l *Limiter) victimLocked() *Conn {
	var best *Conn
	bestRank := -1
	for c := range l.conns {
		r := rank(c)
		if r < 0 {
			continue
		}
		if best == nil || r < bestRank || r == bestRank && c.since < best.since {
			best, bestRank = c, r
		}
	}
	return best
}

func (l *Limiter) connState(c net.Conn, st http.ConnState) {
	tc, ok := c.(*Conn)
	if !ok {
		return
	}
	if st == http.StateClosed || st == http.StateHijacked {
		l.remove(tc)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st != tc.state {
		l.tick++
		tc.state, tc.since = st, l.tick
	}
}

func (l *Limiter) remove(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Collectors returns the limiter's metrics: ix_server_open_connections,
// ix_server_max_connections and ix_server_connections_shed_total{reason
// = evicted | refused}.
func (l *Limiter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "server", Name: "open_connections",
			Help: "HTTP connections open now.",
		}, func() float64 { return float64(l.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "ix", Subsystem: "server", Name: "max_connections",
			Help: "The HTTP connection limit (--max-connections).",
		}, func() float64 { return float64(l.max) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "server", Name: "connections_shed_total",
			Help:        "HTTP connections closed to make room for a new one (reason evicted) or refused at the limit (reason refused).",
			ConstLabels: prometheus.Labels{"reason": "evicted"},
		}, func() float64 { return float64(l.evicted.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "server", Name: "connections_shed_total",
			Help:        "HTTP connections closed to make room for a new one (reason evicted) or refused at the limit (reason refused).",
			ConstLabels: prometheus.Labels{"reason": "refused"},
		}, func() float64 { return float64(l.refused.Load()) }),
	}
}
