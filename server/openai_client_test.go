package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenAIClient drives the server with the official openai npm client
// (testdata/openai-client: version pinned in package.json), installed with
// npm into a temporary folder: models, a non-streaming and a streaming
// chat, a completion and the 404/401 errors. It skips when node or npm is
// missing or the npm registry cannot be reached, unless IX_REQUIRE_NPM=1.
func TestOpenAIClient(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the npm client test")
	}
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("IX_REQUIRE_NPM") == "1" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed: skipping the openai npm client test")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		skip("npm is not installed: skipping the openai npm client test")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "client.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata/openai-client", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--no-package-lock", "--loglevel=error")
	install.Dir = dir
	install.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := install.CombinedOutput(); err != nil {
		skip("npm install of the openai client failed (registry unreachable?): %v\n%s", err, out)
	}

	ts := newTestServer(t, serverOpts{apiKey: "test-key"})
	run := exec.CommandContext(ctx, node, "client.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(),
		"IX_BASE_URL="+ts.URL+"/v1",
		"IX_API_KEY=test-key",
		"IX_MODEL=stories260K",
		"IX_EXPECT_COMPLETION="+lilyGreedy,
	)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("openai client: %v\n%s", err, out)
	}
	t.Logf("openai client: %s", strings.TrimSpace(string(out)))
}
