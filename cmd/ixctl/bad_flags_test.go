package main

import (
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
)

// TestBadCountsRefused: negative thread counts, replicas and node lists
// with empty entries are usage errors (exit 2) naming the flag.
func TestBadCountsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"synth", "--arch", "llama", "--out", "x.gguf", "-t", "-3"}, "--threads -3"},
		{[]string{"quantize", "a.gguf", "b.gguf", "Q8_0", "-t", "-3"}, "-3"},
		{[]string{"upcycle", "a.gguf", "b.gguf", "--experts", "8", "--top-k", "2", "-t", "-3"}, "--threads -3"},
		{[]string{"plan", "--nodes", ",", "--coordinator", "127.0.0.1:1"}, "--nodes"},
		{[]string{"plan", "--nodes", "a,,b", "--coordinator", "127.0.0.1:1"}, "empty entry 2"},
		{[]string{"apply", "--replicas", "-1", "--coordinator", "127.0.0.1:1"}, "--replicas must not be negative"},
	} {
		code, _, errs := run(t, c.args...)
		if code != cli.ExitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("ixctl %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, errs, cli.ExitUsage, c.want)
		}
	}
}
