package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/buildinfo"
)

// TestVersion: --version prints the build info (internal/cli tests the
// version subcommand).
func TestVersion(t *testing.T) {
	want := "coordinator " + buildinfo.Get().String() + "\n"
	if code, out, errs := run(t, "--version"); code != 0 || out != want {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
	}
}

// TestServeJSONLogsAndBuildInfo: with --log-format json every line serve
// logs is a JSON object, and /metrics carries ix_build_info.
func TestServeJSONLogsAndBuildInfo(t *testing.T) {
	base, stop := startServe(t, "-m", stories(t), "--http", "127.0.0.1:0", "--slots", "1", "--ctx", "64", "-t", "1", "--log-format", "json")
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	in := buildinfo.Get()
	want := `ix_build_info{goversion="` + in.GoVersion + `",revision="` + in.Revision + `",version="` + in.Version + `"} 1`
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	logs := stop()
	msgs := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec struct{ Time, Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Time == "" || rec.Level == "" {
			t.Errorf("log line is not a JSON record (%v): %s", err, line)
		}
		msgs[rec.Msg] = true
	}
	for _, m := range []string{"model loaded", "serving", "stopped"} {
		if !msgs[m] {
			t.Errorf("no %q record in the JSON log:\n%s", m, logs)
		}
	}
}

// TestLogFlagsRefused: a bad --log-format or --log-level is a usage
// error naming the flag and the allowed values, before any model loads.
func TestLogFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"serve", "-m", "x.gguf", "--log-format", "xml"}, `"--log-format" flag: want text or json`},
		{[]string{"run", "-m", "x.gguf", "-p", "hi", "--log-format", "logfmt"}, `"--log-format" flag: want text or json`},
		{[]string{"serve", "-m", "x.gguf", "--log-level", "loud"}, `"--log-level" flag: want debug, info, warn or error`},
	} {
		if code, _, errs := run(t, tc.args...); code == 0 || !strings.Contains(errs, tc.says) {
			t.Errorf("%v: exit %d, stderr %q; want it to say %s", tc.args, code, errs, tc.says)
		}
	}
}
