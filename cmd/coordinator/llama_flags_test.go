package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
)

// TestLlamaSpellingsRun: llama-cli's spellings give the same greedy text
// as ours (TestRunGreedy); its GPU flags are refused with exit 2.
func TestLlamaSpellingsRun(t *testing.T) {
	code, out, errs := run(t, "run", "-m", stories(t), "-p", "Lily and Tom went to the", "--predict", "32", "--temperature", "0",
		"-c", "256", "--ctx-size", "256", "-s", "7", "--batch-size", "64", "--no-display-prompt")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := "park. They saw a big box with a big box. They wanted to play with it. They wanted to play with"; strings.TrimSpace(out) != want {
		t.Errorf("output %q\nwant     %q", out, want)
	}
	// -sys is --system-prompt, llama-cli's name of --system.
	if code, _, errs := run(t, "run", "-m", stories(t), "--chat", "-sys", "Be brief.", "-p", "Hi", "-n", "1", "--temp", "0", "-v"); code != 0 {
		t.Fatalf("-sys: exit %d: %s", code, errs)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-m", stories(t), "-p", "x", "-ngl", "99"}, "GPU offload does not apply: Inference-X runs on CPU; drop it"},
		{[]string{"run", "-m", stories(t), "-p", "x", "-fa", "on"}, "-fa (llama.cpp)"},
		{[]string{"run", "-m", stories(t), "-p", "x", "-np", "4"}, "is not a flag of coordinator run"},
		{[]string{"run", "-m", stories(t), "-p", "x", "-ctk", "q8_0"}, "--kv-type"},
		{[]string{"run", "-m", stories(t), "-p", "x", "--n-gpu-layers", "99"}, "GPU offload"},
		{[]string{"run", "-m", stories(t), "-p", "x", "-nb", "1"}, "single-dash multi-letter flag -nb"},
		{[]string{"run", "-m", stories(t), "-p", "x", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"run", "-m", stories(t), "-p", "x", "-n", "many"}, `invalid argument "many"`},
		{[]string{"serve", "-m", stories(t), "--host", "0.0.0.0", "--http", "127.0.0.1:8080"}, "name different hosts"},
		{[]string{"serve", "extra"}, "unknown command"},
	} {
		code, _, errs := run(t, c.args...)
		if code != cli.ExitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errs, c.want)
		}
	}
}

func TestServeCompat(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(args ...string) (*ServeOptions, error) {
		t.Helper()
		o := &ServeOptions{}
		cmd := serveCmd(cli.Streams{}, o)
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return o, o.Complete()
	}
	t.Setenv("IX_API_KEY", "")
	for _, c := range []struct {
		args       []string
		http, key  string
		slots, ctx int
		seed       int64
	}{
		{[]string{}, "127.0.0.1:8080", "", 4, 4096, -1},
		{[]string{"--host", "0.0.0.0"}, "0.0.0.0:8080", "", 4, 4096, -1},
		{[]string{"--port", "9000"}, "127.0.0.1:9000", "", 4, 4096, -1}, // the loopback default stays
		{[]string{"--host", "::1", "--port", "9000"}, "[::1]:9000", "", 4, 4096, -1},
		{[]string{"--http", "0.0.0.0:9000", "--port", "9000"}, "0.0.0.0:9000", "", 4, 4096, -1},
		{[]string{"--api-key-file", keyFile, "--parallel", "8", "--ctx-size", "512", "-s", "42"}, "127.0.0.1:8080", "s3cret", 8, 512, 42},
		{[]string{"-c", "256", "--slots", "2"}, "127.0.0.1:8080", "", 2, 256, -1},
	} {
		o, err := parse(c.args...)
		if err != nil || o.HTTP != c.http || o.APIKey != c.key || o.Slots != c.slots || o.Ctx != c.ctx || o.Compat.Seed != c.seed {
			t.Errorf("%q: %v: http %s key %q slots %d ctx %d seed %d", c.args, err, o.HTTP, o.APIKey, o.Slots, o.Ctx, o.Compat.Seed)
		}
		if c.seed >= 0 && o.Sampler.Seed != uint64(c.seed) {
			t.Errorf("%q: sampler seed %d", c.args, o.Sampler.Seed)
		}
	}
	for _, c := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--http", "0.0.0.0:8080", "--host", "10.0.0.1"}, true, "--host 10.0.0.1 and --http 0.0.0.0:8080 name different hosts"},
		{[]string{"--http", "127.0.0.1:8080", "--port", "9000"}, true, "--port 9000 and --http 127.0.0.1:8080 name different ports"},
		{[]string{"--port", "70000"}, true, "--port 70000"},
		{[]string{"--api-key", "k", "--api-key-file", keyFile}, true, "give one"},
		{[]string{"--seed", "-5"}, true, "--seed -5"},
		{[]string{"--api-key-file", empty}, false, "is empty"},
		{[]string{"--api-key-file", filepath.Join(dir, "missing")}, false, "no such file"},
	} {
		_, err := parse(c.args...)
		if err == nil || cli.IsUsage(err) != c.usage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v (usage error %v); want %q, usage %v", c.args, err, cli.IsUsage(err), c.want, c.usage)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "-m", "x.gguf"}, cli.ExitUsage, "give exactly one of -p PROMPT"},
		{[]string{"run", "-m", "x.gguf", "-p", "x", "--kv-type", "q2"}, cli.ExitUsage, "q2"},
		{[]string{"run", "-m", "x.gguf", "-p", "x", "--top-p", "7"}, cli.ExitUsage, "top"},
		{[]string{"run", "-m", "/nonexistent/x.gguf", "-p", "x"}, cli.ExitError, "no such file"},
		{[]string{"serve"}, cli.ExitUsage, "no model"},
		// llama-server's spellings parse: the model is what fails.
		{[]string{"serve", "-m", "/nonexistent/x.gguf", "-np", "4", "-c", "512", "--host", "127.0.0.1", "--port", "0", "-s", "1"}, cli.ExitError, "no such file"},
		{[]string{"serve", "-m", "x.gguf", "--nodes", "127.0.0.1:1", "--placement", "p.json"}, cli.ExitUsage, "not both"},
		{[]string{"serve", "-m", "x.gguf", "--admin", "127.0.0.1:0"}, cli.ExitUsage, "--admin needs --gossip"},
		{[]string{"perplexity", "-m", "x.gguf"}, cli.ExitUsage, "give a model with -m and a text with -f"},
		{[]string{"bench", "-m", "x.gguf", "-r", "0"}, cli.ExitUsage, "-r >= 1"},
		{[]string{"inspect"}, cli.ExitUsage, "arg"},
	} {
		code, _, errs := run(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("coordinator %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
	}
}
