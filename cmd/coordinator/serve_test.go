package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
)

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"8080":           "127.0.0.1:8080",
		":8080":          "127.0.0.1:8080",
		"0.0.0.0:8080":   "0.0.0.0:8080",
		"[::1]:9":        "[::1]:9",
		"localhost:8080": "localhost:8080",
	} {
		if got := listenAddr(in); got != want {
			t.Errorf("listenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// lockedBuffer is a log sink safe for the server's goroutines.
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

// TestServe starts `coordinator serve` on a loopback port, checks
// /health, auth and one completion, and shuts it down by cancelling the
// context (what SIGINT does).
func TestServe(t *testing.T) {
	base, stop := startServe(t, "-m", stories(t), "--http", "127.0.0.1:0", "--api-key", "k", "--slots", "2", "--ctx", "256", "-t", "1")
	resp, err := http.Get(base + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health: %v %v", resp, err)
	}
	resp, _ = http.Get(base + "/v1/models")
	if resp.StatusCode != 401 {
		t.Errorf("/v1/models without the key: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", base+"/v1/completions", strings.NewReader(`{"model":"stories260K","prompt":"Lily and Tom went to the","max_tokens":8,"temperature":0}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Model   string
		Choices []struct{ Text string }
	}
	json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if c.Model != "stories260K" || len(c.Choices) != 1 || !strings.HasPrefix(strings.TrimSpace(c.Choices[0].Text), "park. They saw a big") {
		t.Errorf("completion %+v", c)
	}
	logs := stop()
	for _, s := range []string{"model loaded", "chat template", "serving", "shutting down", "stopped"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
}

// startServe runs `coordinator serve ARGS` in-process until stop, which
// shuts it down as SIGINT does and returns its logs; base is its URL.
func startServe(t *testing.T, args ...string) (base string, stop func() string) {
	t.Helper()
	base, stop, _ = startServeLogs(t, args...)
	return base, stop
}

// startServeLogs is startServe that also returns the live log buffer.
func startServeLogs(t *testing.T, args ...string) (base string, stop func() string, _ *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	addr := make(chan net.Addr, 1)
	o := &ServeOptions{ready: func(a net.Addr) { addr <- a }}
	cmd := serveCmd(cli.Streams{In: strings.NewReader(""), Out: io.Discard, Err: logs}, o)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	select {
	case a := <-addr:
		base = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	}
	stopped := false
	stop = func() string {
		t.Helper()
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("serve: %v\n%s", err, logs.String())
			}
		}
		return logs.String()
	}
	t.Cleanup(func() { stop() })
	return base, stop, logs
}
