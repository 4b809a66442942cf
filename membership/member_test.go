package membership

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// fast makes failure detection quick on loopback.
func fast(mc *memberlist.Config) {
	mc.ProbeInterval = 50 * time.Millisecond
	mc.ProbeTimeout = 25 * time.Millisecond
	mc.SuspicionMult = 1
	mc.SuspicionMaxTimeoutMult = 1
	mc.GossipInterval = 10 * time.Millisecond
	mc.PushPullInterval = 200 * time.Millisecond
	mc.TCPTimeout = 200 * time.Millisecond
	mc.GossipToTheDeadTime = time.Second
}

func testConfig(name string, seeds ...string) Config {
	c := DefaultConfig()
	c.Name, c.Bind, c.Seeds, c.Profile, c.Tune = name, "127.0.0.1:0", seeds, "local", fast
	c.RejoinInterval = 50 * time.Millisecond
	c.Meta = Meta{Role: RoleExpert, RPC: "127.0.0.1:1", Capacity: 1 << 30}
	return c
}

func start(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// waitUntil polls cond until it holds or 10 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stateOf(c *Cluster, name string) State {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func TestJoinUpdateLeaveFail(t *testing.T) {
	a := start(t, testConfig("a"))
	events, cancel := a.Subscribe(64)
	defer cancel()
	b := start(t, testConfig("b", a.Addr()))
	c := start(t, testConfig("c", b.Addr()))
	for _, m := range []*Cluster{a, b, c} {
		waitUntil(t, m.Name()+" sees 3 alive members", func() bool { return len(m.Alive(RoleExpert)) == 3 })
	}

	// Metadata changes reach the others.
	meta := c.Meta()
	meta.Epoch, meta.Load, meta.Draining = 7, 3, true
	if err := c.UpdateMeta(meta); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a sees c's new epoch", func() bool {
		for _, m := range a.Members() {
			if m.Name == "c" && m.Meta.Epoch == 7 && m.Meta.Draining && m.Meta.Load == 3 {
				return true
			}
		}
		return false
	})

	// A graceful leave is a leave, not a failure.
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a sees c left", func() bool { return stateOf(a, "c") == StateLeft })

	// A crash (no leave) is a failure.
	b.Shutdown()
	waitUntil(t, "a sees b dead", func() bool { return stateOf(a, "b") == StateDead })
	if n := len(a.Alive("")); n != 1 {
		t.Fatalf("a sees %d alive members, want 1", n)
	}

	kinds := map[string][]EventKind{}
	for len(events) > 0 {
		ev := <-events
		kinds[ev.Member.Name] = append(kinds[ev.Member.Name], ev.Kind)
	}
	has := func(name string, k EventKind) bool {
		for _, x := range kinds[name] {
			if x == k {
				return true
			}
		}
		return false
	}
	if !has("b", EventJoin) || !has("c", EventUpdate) || !has("c", EventLeave) || has("c", EventFail) || !has("b", EventFail) {
		t.Fatalf("events: %v", kinds)
	}
}

func TestEncryptionKeepsStrangersOut(t *testing.T) {
	key, _ := ParseKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	ca := testConfig("a")
	ca.Key = key
	a := start(t, ca)
	cb := testConfig("b", a.Addr())
	cb.Key = key
	b := start(t, cb)
	waitUntil(t, "b joins with the key", func() bool { return len(a.Alive("")) == 2 })

	other, _ := ParseKey("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=")
	for _, k := range [][]byte{nil, other} {
		cx := testConfig("x", a.Addr())
		cx.Key, cx.RejoinInterval = k, 0
		x := start(t, cx)
		if n := len(x.Alive("")); n != 1 {
			t.Fatalf("a member with key %x joined an encrypted cluster (%d members)", k, n)
		}
		x.Shutdown()
	}
	if stateOf(a, "x") != "" || stateOf(b, "x") != "" {
		t.Fatal("the stranger is listed")
	}
}

// TestSeedsByNameAndRejoin: a seed given by DNS name works, and a member
// whose seed is not up yet joins once it is.
func TestSeedsByNameAndRejoin(t *testing.T) {
	// Reserve a port for the seed, start the joiner first, then the seed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	seedAddr := net.JoinHostPort("localhost", itoa(port))
	b := start(t, testConfig("b", seedAddr))
	if n := len(b.Alive("")); n != 1 {
		t.Fatalf("b has %d members before the seed is up", n)
	}
	ca := testConfig("a")
	ca.Bind = net.JoinHostPort("127.0.0.1", itoa(port))
	a := start(t, ca)
	waitUntil(t, "b joins the late seed by name", func() bool { return len(a.Alive("")) == 2 && len(b.Alive("")) == 2 })
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestMetaLimits(t *testing.T) {
	m := Meta{Role: RoleCoordinator, RPC: strings.Repeat("r", maxRPC), Host: strings.Repeat("h", maxHost),
		Capacity: 1<<63 - 1, Epoch: 1<<64 - 1, Load: 1<<32 - 1, Draining: true, Leaving: true}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > memberlist.MetaMaxSize {
		t.Fatalf("largest meta is %d bytes", len(b))
	}
	back, err := DecodeMeta(b)
	if err != nil || back != m {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	for _, bad := range []Meta{{Role: "x"}, {Role: RoleExpert, Host: strings.Repeat("h", maxHost+1)}, {Role: RoleExpert, Capacity: -1}} {
		if _, err := bad.Encode(); err == nil {
			t.Errorf("%+v encoded", bad)
		}
	}
	if _, err := DecodeMeta([]byte(`{"r":"expert","c":"x"}`)); err == nil {
		t.Error("bad JSON decoded")
	}
	// A small meta, as nodes send it.
	small, _ := (&Meta{Role: RoleExpert, RPC: "10.1.2.3:7070", Host: "epyc-1", Capacity: 768 << 30, Epoch: 12, Load: 2}).Encode()
	if len(small) > 100 {
		t.Errorf("a typical meta is %d bytes: %s", len(small), small)
	}
}

func TestParseKeyAndFlags(t *testing.T) {
	for _, ok := range []string{"MDEyMzQ1Njc4OWFiY2RlZg==", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="} {
		if _, err := ParseKey(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "!!", "MDEy"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	f := Flags{Join: []string{"a:1"}}
	if err := f.Validate(); err == nil {
		t.Error("--join without --gossip accepted")
	}
	t.Setenv(KeyEnv, "MDEyMzQ1Njc4OWFiY2RlZg==")
	f = Flags{Gossip: "127.0.0.1:0", Join: []string{"ix-expert.ix.svc:7946"}}
	if err := f.Complete(); err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg := f.Config("n", Meta{Role: RoleExpert}); len(cfg.Key) != 16 || cfg.Seeds[0] != "ix-expert.ix.svc:7946" {
		t.Fatalf("config %+v", cfg)
	}
}

func TestLogBridgeLevels(t *testing.T) {
	var buf bytes.Buffer
	b := &logBridge{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	b.Write([]byte("[DEBUG] memberlist: probe\n"))
	b.Write([]byte("[WARN] memberlist: refuting\n"))
	b.Write([]byte("[ERR] memberlist: failed\n"))
	out := buf.String()
	if strings.Contains(out, "probe") || !strings.Contains(out, "level=WARN msg=refuting") || !strings.Contains(out, "level=ERROR msg=failed") {
		t.Fatalf("bridged log:\n%s", out)
	}
}
