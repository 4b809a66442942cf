package membership

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines containing sub.
func lines(log, sub string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// TestGarbageGossipIsRateLimited sends garbage UDP packets and TCP
// streams to a real member on loopback: memberlist reports each one, but
// the log gets one line per kind of error while ix_gossip_errors_total
// counts every one.
func TestGarbageGossipIsRateLimited(t *testing.T) {
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	cfg := testConfig("a")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Registerer = reg
	cfg.LogInterval = time.Hour // one line per kind for the whole test
	c := start(t, cfg)

	const packets, bad, streams = 200, 100, 10
	udp, err := net.Dial("udp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for i := 0; i < packets; i++ {
		udp.Write([]byte{0xff, 1, 2, 3}) // no such message type
	}
	for i := 0; i < bad; i++ {
		udp.Write([]byte{0, 0xc1, 0xc1, 0xc1}) // a ping that is not msgpack
	}
	for i := 0; i < streams; i++ {
		conn, err := net.Dial("tcp", c.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte{0xff, 'g', 'a', 'r', 'b', 'a', 'g', 'e'})
		conn.Close()
	}
	errs := func() float64 { return testutil.ToFloat64(c.bridgeErrors().WithLabelValues("error")) }
	// Loopback UDP can drop packets when the reader falls behind, so wait
	// for every kind and for most of the packets.
	kinds := []string{"msg type (255) not supported", "Failed to decode ping request", "Received invalid msgType (255)"}
	waitUntil(t, "the member reports the garbage", func() bool {
		log := logs.String()
		for _, k := range kinds {
			if len(lines(log, k)) == 0 {
				return false
			}
		}
		return errs() >= streams+(packets+bad)/2
	})
	got := errs()
	log := logs.String()
	for _, kind := range kinds {
		if n := len(lines(log, kind)); n > 1 {
			t.Errorf("%d log lines %q for garbage, want at most 1", n, kind)
		}
	}
	if n := len(lines(log, "level=ERROR")); n > 3 {
		t.Errorf("%d ERROR lines for %v counted errors:\n%s", n, got, log)
	}
	t.Logf("%v errors counted, %d logged", got, len(lines(log, "level=ERROR")))
	if n, err := testutil.GatherAndCount(reg, "ix_gossip_errors_total"); err != nil || n == 0 {
		t.Errorf("ix_gossip_errors_total not registered: %d series, %v", n, err)
	}
}

// TestLogBridgeSuppressedCount checks the count of suppressed lines that
// the next line of a kind carries, and that kinds are limited apart.
func TestLogBridgeSuppressedCount(t *testing.T) {
	var logs lockedBuffer
	b, err := newLogBridge(slog.New(slog.NewTextHandler(&logs, nil)), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	b.now = func() time.Time { return now }
	for i := 0; i < 5; i++ {
		b.Write([]byte("[ERR] memberlist: Failed to decode ping request: bad " + strings.Repeat("x", i) + " from=127.0.0.1:1\n"))
	}
	b.Write([]byte("[WARN] memberlist: Got invalid checksum for UDP packet: 1, 2\n"))
	now = now.Add(time.Minute)
	b.Write([]byte("[ERR] memberlist: Failed to decode ping request: again from=127.0.0.1:2\n"))
	got := logs.String()
	if n := len(lines(got, "Failed to decode ping request")); n != 2 {
		t.Fatalf("%d lines of the kind, want 2:\n%s", n, got)
	}
	if !strings.Contains(lines(got, "again")[0], "suppressed=4") {
		t.Errorf("the second line does not count the 4 suppressed:\n%s", got)
	}
	if len(lines(got, "invalid checksum")) != 1 {
		t.Errorf("another kind was suppressed:\n%s", got)
	}
}

// bridgeErrors returns the member's error counter.
func (c *Cluster) bridgeErrors() *prometheus.CounterVec { return c.bridge.errors }
