package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// serveCompletion starts serve with args, asks one greedy completion and
// shuts the server down; it returns the text and the logs.
func serveCompletion(t *testing.T, args ...string) (string, string) {
	t.Helper()
	base, stop := startServe(t, append([]string{"--http", "127.0.0.1:0", "--slots", "1", "--ctx", "128", "-t", "1"}, args...)...)
	resp, err := http.Post(base+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt":"the mixture of experts","max_tokens":12,"temperature":0}`))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Choices []struct{ Text string } }
	err = json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	logs := stop()
	if err != nil || resp.StatusCode != 200 || len(c.Choices) != 1 {
		t.Fatalf("completion: status %d, %v, %+v\n%s", resp.StatusCode, err, c, logs)
	}
	return c.Choices[0].Text, logs
}

// TestServeExpertMem: serve with the expert pager under a budget of a few
// experts answers exactly what plain mmap answers, and logs the budget.
func TestServeExpertMem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kimi.gguf")
	synthMoE(t, path)
	want, plainLogs := serveCompletion(t, "-m", path)
	if strings.Contains(plainLogs, "expert store") {
		t.Errorf("serve without --expert-mem opened the pager:\n%s", plainLogs)
	}
	got, logs := serveCompletion(t, "-m", path, "--expert-mem", "16KiB")
	if got != want || want == "" {
		t.Errorf("with --expert-mem 16KiB: %q, plain mmap: %q", got, want)
	}
	if !strings.Contains(logs, "expert store") || !strings.Contains(logs, "budget 16.0 KiB") {
		t.Errorf("logs lack the pager's budget:\n%s", logs)
	}
	if code, _, errs := run(t, "serve", "-m", path, "--expert-mem", "lots"); code == 0 || !strings.Contains(errs, "--expert-mem") {
		t.Errorf("--expert-mem lots: exit %d, %s", code, errs)
	}
	if code, _, errs := run(t, "serve", "-m", path, "--expert-mem", "1GiB", "--nodes", "127.0.0.1:1"); code == 0 || !strings.Contains(errs, "single-node") {
		t.Errorf("--expert-mem with --nodes: exit %d, %s", code, errs)
	}
}

// TestServeExpertMemMetrics: with --expert-mem, /metrics carries the
// pager's statistics, fed by a completion.
func TestServeExpertMemMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kimi.gguf")
	synthMoE(t, path)
	base, _ := startServe(t, "-m", path, "--http", "127.0.0.1:0", "--slots", "1", "--ctx", "128", "-t", "1", "--expert-mem", "16KiB")
	resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x","max_tokens":4}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("completion: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	for _, name := range []string{"ix_pager_resident_bytes ", "ix_pager_budget_bytes 16384", "ix_pager_misses_total ", "ix_pager_hits_total "} {
		if !strings.Contains(m, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	if strings.Contains(m, "ix_pager_misses_total 0\n") {
		t.Error("no pager miss counted after a completion under a 16 KiB budget")
	}
}
