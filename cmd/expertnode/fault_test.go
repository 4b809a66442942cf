package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/inference-x/inference-x/internal/testenv"
)

// blockedStdout returns a pipe whose buffer is full: a process writing
// to w blocks on its first write until r is read. A run given it as
// stdout therefore cannot finish before the test drains r, whatever the
// speed of the machine.
func blockedStdout(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	size, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, os.Getpagesize())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	return r, w
}

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// noFaultTrace fails when a process's stderr holds a Go crash trace.
func noFaultTrace(t *testing.T, who, stderr string) {
	t.Helper()
	for _, s := range []string{"SIGBUS", "unexpected fault address", "goroutine ", "panic:"} {
		if strings.Contains(stderr, s) {
			t.Errorf("%s printed a crash trace (%q):\n%s", who, s, lastLines(stderr, 20))
			return
		}
	}
}

var modelLine = regexp.MustCompile(`(?m)^model: `)

// TestTruncatedModelFile truncates model files while they are mapped, as
// `cp new.gguf model.gguf` over a served file does: `coordinator run`
// fails with "model file changed while in use" and exit status 1 instead
// of dying of SIGBUS, and an expert node whose file is truncated fails
// the Forward (the coordinator reports it) and keeps running, answering
// health checks.
func TestTruncatedModelFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	bin := binaries(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "kimi.gguf")
	synth := exec.Command(filepath.Join(bin, "ixctl"), "synth", "--preset", "kimi-k2-mini", "--layers", "3", "--dim", "256", "--ff", "256",
		"--heads", "2", "--experts", "32", "--expert-ff", "32", "--vocab", "512", "--q-lora", "64", "--kv-lora", "64",
		"--type", "Q8_0", "--seed", "5", "--out", model, "--no-progress")
	if out, err := synth.CombinedOutput(); err != nil {
		t.Fatalf("ixctl synth: %v\n%s", err, out)
	}
	args := []string{"run", "--prompt-tokens", "68,12,400,33,71", "-n", "100", "--temp", "0", "--ctx", "256", "-t", "2", "-v"}

	// runTruncating runs the coordinator with stdout blocked, truncates
	// victim once the coordinator has loaded its model, then lets it go on.
	runTruncating := func(t *testing.T, victim string, extra ...string) (error, string) {
		r, w := blockedStdout(t)
		cmd := exec.Command(filepath.Join(bin, "coordinator"), append(args, extra...)...)
		cmd.Stdout = w
		_, logs := startCmd(t, cmd)
		w.Close()
		waitLog(t, logs, modelLine, "the coordinator loading its model")
		if err := os.Truncate(victim, 4096); err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r)
		err := cmd.Wait()
		return err, logs.String()
	}

	t.Run("run", func(t *testing.T) {
		path := filepath.Join(dir, "local.gguf")
		copyFile(t, model, path)
		err, stderr := runTruncating(t, path, "-m", path)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("coordinator run on a truncated file: %v, want exit status 1\n%s", err, stderr)
		}
		for _, s := range []string{"model file changed while in use", path, "now 4096 bytes"} {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr does not say %q:\n%s", s, lastLines(stderr, 5))
			}
		}
		noFaultTrace(t, "coordinator run", stderr)
		t.Logf("coordinator: %s", lastLines(stderr, 1))
	})

	t.Run("expertnode", func(t *testing.T) {
		nodeFile := filepath.Join(dir, "node.gguf")
		copyFile(t, model, nodeFile)
		node, addr, nodeLogs := startNode(t, bin, nodeFile, "0-31", "--health-listen", "127.0.0.1:0")
		health := "http://" + waitLog(t, nodeLogs, healthAddr, "the node's health port")[1]
		readyz := func() (int, string) {
			resp, err := http.Get(health + "/readyz")
			if err != nil {
				t.Fatalf("GET /readyz: %v", err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := readyz(); code != http.StatusOK {
			t.Fatalf("node /readyz before the truncation: %d %s", code, body)
		}
		err, stderr := runTruncating(t, nodeFile, "-m", model, "--nodes", addr, "--local-experts=false")
		if err == nil {
			t.Fatalf("coordinator run against a node whose file was truncated succeeded\n%s", stderr)
		}
		if !strings.Contains(stderr, "model file changed while in use") {
			t.Errorf("the coordinator does not report the node's error:\n%s", lastLines(stderr, 5))
		}
		noFaultTrace(t, "coordinator run", stderr)
		t.Logf("coordinator: %s", lastLines(stderr, 1))

		// The node is still up and answers health checks.
		if node.ProcessState != nil {
			t.Fatalf("the node exited: %v\n%s", node.ProcessState, lastLines(nodeLogs.String(), 20))
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("health check after the fault: %v\n%s", err, lastLines(nodeLogs.String(), 20))
		}
		if err := node.Process.Signal(unix.Signal(0)); err != nil {
			t.Errorf("the node is gone: %v", err)
		}
		if code, body := readyz(); code != http.StatusServiceUnavailable || !strings.Contains(body, "model file changed while in use") {
			t.Errorf("node /readyz after the truncation: %d %s, want 503 naming the changed file", code, body)
		}
		noFaultTrace(t, "expertnode", nodeLogs.String())
		if bytes.Contains([]byte(nodeLogs.String()), []byte("model file changed")) {
			t.Logf("node: %s", firstMatch(nodeLogs.String(), "model file changed"))
		}
	})
}

var serveAddr = regexp.MustCompile(`msg=serving addr=(\S+)`)

// TestTruncatedServeFile truncates the model under `coordinator serve`:
// the request in flight fails with "model file changed while in use"
// and the process does not crash (it either goes on serving or stops
// with status 1, depending on what the scheduler does with a failed
// step; never a fault trace, never status 2).
func TestTruncatedServeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	bin := binaries(t)
	path := filepath.Join(t.TempDir(), "stories.gguf")
	copyFile(t, testenv.Shared(t, "models/stories260K/stories260K.gguf"), path)
	cmd := exec.Command(filepath.Join(bin, "coordinator"), "serve", "-m", path, "--http", "127.0.0.1:0", "-t", "2")
	_, logs := startCmd(t, cmd)
	base := "http://" + waitLog(t, logs, serveAddr, "serve listening")[1]
	complete := func() (int, string) {
		resp, err := http.Post(base+"/v1/completions", "application/json",
			strings.NewReader(`{"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := complete(); code != http.StatusOK {
		t.Fatalf("completion before the truncation: %d %s", code, body)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	code, body := complete()
	if code == http.StatusOK || !strings.Contains(body, "model file changed while in use") {
		t.Errorf("completion on a truncated file: %d %s", code, body)
	}
	t.Logf("serve answered %d %s", code, body)
	// The process stays up: alive, but not ready while the file differs.
	probe := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s after the truncation: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := probe("/livez"); code != http.StatusOK {
		t.Errorf("/livez after the truncation: %d %s", code, body)
	}
	for _, p := range []string{"/readyz", "/health"} {
		if code, body := probe(p); code != http.StatusServiceUnavailable || !strings.Contains(body, "model file changed while in use") {
			t.Errorf("%s after the truncation: %d %s, want 503 naming the changed file", p, code, body)
		}
	}
	cmd.Process.Signal(unix.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("serve ended with %v after SIGTERM, want status 0", err)
	}
	noFaultTrace(t, "coordinator serve", logs.String())
}

// firstMatch returns the first line of s containing sub.
func firstMatch(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
