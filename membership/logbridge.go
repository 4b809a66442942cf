package membership

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// logBridge is memberlist's log output: it reads the level memberlist
// writes at the start of each line ("[DEBUG] memberlist: ...") and logs
// the rest at that slog level. slog.NewLogLogger would log every line at
// one level, so a flood of [DEBUG] probes would read as warnings or the
// [ERR] lines would be hidden.
//
// memberlist logs one warning or error per gossip packet or stream it
// cannot decode, so anyone who can send garbage to the gossip port could
// flood the log. The bridge logs one line of each kind (the message up to
// its first variable part) per interval and counts the rest: the next
// line of that kind says how many were suppressed. Every warning and
// error is counted in errors (when set), logged or not.
type logBridge struct {
	log      *slog.Logger
	interval time.Duration
	errors   *prometheus.CounterVec // level; nil: not counted
	now      func() time.Time

	mu    sync.Mutex
	kinds map[string]*logKind
}

// logKind is the rate limit of one kind of line.
type logKind struct {
	last       time.Time // when a line of this kind was last logged
	suppressed int       // lines not logged since
}

const (
	// DefaultLogInterval is how often one kind of memberlist warning or
	// error is logged at most.
	DefaultLogInterval = 10 * time.Second
	// maxLogKinds bounds the kinds tracked; lines of further kinds share
	// one limit.
	maxLogKinds = 64
)

func newLogBridge(log *slog.Logger, interval time.Duration, reg prometheus.Registerer) (*logBridge, error) {
	if interval <= 0 {
		interval = DefaultLogInterval
	}
	b := &logBridge{log: log, interval: interval, now: time.Now, kinds: map[string]*logKind{}}
	if reg != nil {
		cv := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "ix", Subsystem: "gossip", Name: "errors_total",
			Help: "memberlist warnings and errors by level, logged or suppressed by the log's rate limit; most are gossip packets or streams that failed to decode or decrypt.",
		}, []string{"level"})
		if err := reg.Register(cv); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			cv = are.ExistingCollector.(*prometheus.CounterVec)
		}
		b.errors = cv
	}
	return b, nil
}

var levels = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG] "), slog.LevelDebug},
	{[]byte("[INFO] "), slog.LevelInfo},
	{[]byte("[WARN] "), slog.LevelWarn},
	{[]byte("[ERR] "), slog.LevelError},
	{[]byte("[ERROR] "), slog.LevelError},
}

func (b *logBridge) Write(p []byte) (int, error) {
	n := len(p)
	line := bytes.TrimRight(p, "\n")
	lvl := slog.LevelInfo
	for _, l := range levels {
		if bytes.HasPrefix(line, l.prefix) {
			lvl, line = l.level, line[len(l.prefix):]
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	ctx := context.Background()
	if lvl < slog.LevelWarn {
		if b.log.Enabled(ctx, lvl) {
			b.log.Log(ctx, lvl, string(line))
		}
		return n, nil
	}
	if b.errors != nil {
		name := "error"
		if lvl == slog.LevelWarn {
			name = "warn"
		}
		b.errors.WithLabelValues(name).Inc()
	}
	suppressed, ok := b.allow(lineKind(line))
	if !ok || !b.log.Enabled(ctx, lvl) {
		return n, nil
	}
	if suppressed > 0 {
		b.log.Log(ctx, lvl, string(line), "suppressed", suppressed, "suppressed_for", b.interval.String())
	} else {
		b.log.Log(ctx, lvl, string(line))
	}
	return n, nil
}

// allow reports whether a line of kind may be logged now, and how many of
// its kind were suppressed since the last one logged.
func (b *logBridge) allow(kind string) (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kinds == nil { // a zero logBridge limits with the defaults
		b.kinds, b.now, b.interval = map[string]*logKind{}, time.Now, DefaultLogInterval
	}
	k := b.kinds[kind]
	if k == nil {
		if len(b.kinds) >= maxLogKinds {
			kind = "other"
			k = b.kinds[kind]
		}
		if k == nil {
			b.kinds[kind] = &logKind{last: b.now()}
			return 0, true
		}
	}
	now := b.now()
	if now.Sub(k.last) < b.interval {
		k.suppressed++
		return 0, false
	}
	s := k.suppressed
	k.last, k.suppressed = now, 0
	return s, true
}

// lineKind is a line's message up to its first variable part (a colon,
// parenthesis, quote or digit), e.g. "Failed to decode ping request" or
// "Received invalid msgType".
func lineKind(line []byte) string {
	if i := bytes.IndexAny(line, ":(\"'0123456789"); i >= 0 {
		line = line[:i]
	}
	if i := bytes.Index(line, []byte(" from=")); i >= 0 {
		line = line[:i]
	}
	return string(bytes.TrimSpace(line))
}
