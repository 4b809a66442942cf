package main

import (
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
)

// TestBadCountsRefused: negative or zero counts and lists with empty
// entries are usage errors (exit 2) naming the flag, before the model is
// opened (the model here does not exist: accepting the flag would exit 1).
func TestBadCountsRefused(t *testing.T) {
	const m = "/nonexistent/x.gguf"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-m", m, "-p", "x", "-t", "-3"}, "--threads -3"},
		{[]string{"run", "-m", m, "-p", "x", "-n", "-2"}, "-n -2"},
		{[]string{"run", "-m", m, "-p", "x", "--ctx", "-5"}, "--ctx -5"},
		{[]string{"run", "-m", m, "-p", "x", "--nodes", ","}, "--nodes"},
		{[]string{"run", "-m", m, "-p", "x", "--nodes", "127.0.0.1:1,,127.0.0.1:2"}, "empty entry"},
		{[]string{"serve", "-m", m, "-t", "-3"}, "--threads -3"},
		{[]string{"serve", "-m", m, "--slots", "0"}, "--slots 0"},
		{[]string{"serve", "-m", m, "-np", "-1"}, "--slots -1"},
		{[]string{"serve", "-m", m, "--queue", "-1"}, "--queue -1"},
		{[]string{"serve", "-m", m, "--ctx", "-5"}, "--ctx -5"},
		{[]string{"serve", "-m", m, "--batch", "0"}, "--batch 0"},
		{[]string{"serve", "-m", m, "-n", "-2"}, "-n -2"},
		{[]string{"serve", "-m", m, "--nodes", ","}, "--nodes"},
		{[]string{"serve", "-m", m, "--gossip", "127.0.0.1:0", "--replicas", "0"}, "--replicas 0"},
		{[]string{"serve", "-m", m, "--gossip", "127.0.0.1:0", "--join", ","}, "--join"},
		{[]string{"serve", "-m", m, "--gossip", "10.1.2.3:7946"}, "--gossip-key-file"},
		{[]string{"bench", "-m", m, "-t", "-3"}, "--threads -3"},
		{[]string{"perplexity", "-m", m, "-f", "t.txt", "-t", "-3"}, "--threads -3"},
		{[]string{"adaptive-bench", "--in-process", "-m", m, "-f", "t.txt", "-t", "-3"}, "--threads -3"}, // in process: a child would be this test binary
	} {
		t.Setenv("IX_GOSSIP_KEY", "")
		code, _, errs := run(t, c.args...)
		if code != cli.ExitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("coordinator %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, errs, cli.ExitUsage, c.want)
		}
	}
}
