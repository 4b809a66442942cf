package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inference-x/inference-x/synth"
)

// TestServeGossipErrorsMetric sends garbage to serve's gossip port: the
// log gets one line of the kind, /metrics counts every packet in
// ix_gossip_errors_total.
func TestServeGossipErrorsMetric(t *testing.T) {
	c, err := synth.Preset("mixtral-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.KVHeads, c.Vocab = 2, 128, 256, 4, 2, 512
	model := filepath.Join(t.TempDir(), "moe.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 3, Threads: 2}, model); err != nil {
		t.Fatal(err)
	}
	// A free port for gossip (TCP and UDP), so that the test knows it
	// before serve logs it.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gossip := l.LocalAddr().String()
	l.Close()
	base, stop := startServe(t, "-m", model, "--http", "127.0.0.1:0", "--gossip", gossip, "-t", "1")
	udp, err := net.Dial("udp", gossip)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	const packets = 50
	for i := 0; i < packets; i++ {
		udp.Write([]byte{0xff, 'x'})
	}
	// Loopback UDP may drop some; wait until most are counted.
	count := regexp.MustCompile(`(?m)^ix_gossip_errors_total\{level="error"\} (\d+)$`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := count.FindStringSubmatch(string(b)); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= packets/2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ix_gossip_errors_total did not count the garbage:\n%s", grepLines(string(b), "ix_gossip"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := stop()
	if n := strings.Count(out, "not supported"); n != 1 {
		t.Errorf("%d log lines for %d garbage packets, want 1", n, packets)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
