package membership

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestGossipSecureDefaults: without a key gossip stays on loopback (a
// wildcard --gossip binds 127.0.0.1) and a specific other address is
// refused, naming the flags to add; --insecure or a key lifts both.
func TestGossipSecureDefaults(t *testing.T) {
	const key = "MDEyMzQ1Njc4OWFiY2RlZg=="
	t.Setenv(KeyEnv, "")
	for _, tc := range []struct {
		gossip, key string
		advertise   string
		insecure    bool
		bind        string // "" : refused
		warn        bool
	}{
		{gossip: ":7946", bind: "127.0.0.1:7946"},
		{gossip: "0.0.0.0:7946", bind: "127.0.0.1:7946"},
		{gossip: "[::]:7946", bind: "127.0.0.1:7946"},
		{gossip: "127.0.0.1:0", bind: "127.0.0.1:0"},
		{gossip: "localhost:7946", bind: "localhost:7946"},
		{gossip: "10.1.2.3:7946"},
		{gossip: "node-0.ix:7946"},
		{gossip: ":7946", advertise: "10.1.2.3:7946"},
		{gossip: ":7946", advertise: "10.1.2.3:7946", key: key, bind: ":7946"},
		{gossip: ":7946", advertise: "127.0.0.1:7946", bind: "127.0.0.1:7946"},
		{gossip: "10.1.2.3:7946", insecure: true, bind: "10.1.2.3:7946", warn: true},
		{gossip: ":7946", insecure: true, bind: ":7946", warn: true},
		{gossip: "10.1.2.3:7946", key: key, bind: "10.1.2.3:7946"},
		{gossip: ":7946", key: key, bind: ":7946"},
	} {
		f := Flags{Gossip: tc.gossip, Key: tc.key, Advertise: tc.advertise, Insecure: tc.insecure}
		if err := f.Complete(); err != nil {
			t.Fatal(err)
		}
		err := f.Validate()
		if tc.bind == "" {
			if err == nil || !strings.Contains(err.Error(), "--gossip-key-file") || !strings.Contains(err.Error(), "--insecure") {
				t.Errorf("--gossip %s without a key: %v, want a refusal naming --gossip-key-file and --insecure", tc.gossip, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("--gossip %s: %v", tc.gossip, err)
			continue
		}
		if got := f.Config("n", Meta{Role: RoleExpert}).Bind; got != tc.bind {
			t.Errorf("--gossip %s (key %v, insecure %v) binds %s, want %s", tc.gossip, tc.key != "", tc.insecure, got, tc.bind)
		}
		var buf bytes.Buffer
		f.LogSecurity(slog.New(slog.NewTextHandler(&buf, nil)))
		if got := strings.Contains(buf.String(), "level=WARN"); got != tc.warn {
			t.Errorf("--gossip %s (insecure %v): warning %v, want %v: %s", tc.gossip, tc.insecure, got, tc.warn, buf.String())
		}
	}
}
