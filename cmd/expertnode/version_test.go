package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/inference-x/inference-x/internal/buildinfo"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/testenv"
)

func run(ctx context.Context, args ...string) (int, string, string) {
	var out bytes.Buffer
	errs := newSyncBuffer()
	code := cli.Run(ctx, "expertnode", newRoot, args, cli.Streams{In: strings.NewReader(""), Out: &out, Err: errs})
	return code, out.String(), errs.String()
}

// TestVersion: --version answers without a model.
func TestVersion(t *testing.T) {
	want := "expertnode " + buildinfo.Get().String() + "\n"
	if code, out, errs := run(context.Background(), "--version"); code != 0 || out != want {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
	}
}

// TestJSONLog starts a node in-process with --log-format json and checks
// that every line it logs up to serving is a JSON record; a bad
// --log-format is refused naming the allowed values.
func TestJSONLog(t *testing.T) {
	if code, _, errs := run(context.Background(), "-m", "x.gguf", "--log-format", "yaml"); code == 0 ||
		!strings.Contains(errs, `"--log-format" flag: want text or json`) {
		t.Errorf("--log-format yaml: exit %d, stderr %q", code, errs)
	}
	model := testenv.Shared(t, "testdata/models/deepseek2-384.F16.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	errs := newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, "expertnode", newRoot, []string{"-m", model, "--listen", "127.0.0.1:0", "--experts", "0-7", "-t", "1", "--log-format", "json"},
			cli.Streams{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: errs})
	}()
	for !strings.Contains(errs.String(), `"msg":"expert node serving"`) {
		select {
		case code := <-done:
			t.Fatalf("expertnode exited %d:\n%s", code, errs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 && code != 130 {
		t.Errorf("exit %d after cancel:\n%s", code, errs.String())
	}
	msgs := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(errs.String()), "\n") {
		var rec struct{ Time, Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Time == "" || rec.Level == "" {
			t.Errorf("log line is not a JSON record (%v): %s", err, line)
		}
		msgs[rec.Msg] = true
	}
	if !msgs["holding experts"] || !msgs["expert node serving"] {
		t.Errorf("missing records:\n%s", errs.String())
	}
}
