package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestRunExpertMem runs a 384-expert deepseek2 model with plain mmap, a
// pager budget that forces evictions and the auto budget (which holds
// this small model whole, so it maps it plainly): the greedy output is
// the same and --expert-stats reports the store. (The model has one MoE
// layer, so there is no next layer to predict.)
func TestRunExpertMem(t *testing.T) {
	m := filepath.Join(testenv.Shared(t, "testdata/models"), "deepseek2-384.Q8_0.gguf")
	args := []string{"run", "-m", m, "--prompt-tokens", "1,300,301,302", "-n", "12", "--temp", "0", "--expert-stats", "-t", "2"}
	var want string
	for _, tc := range []struct {
		mem  string
		errs []string
	}{
		{"plain", []string{"expert store: plain mmap, no pager"}},
		{"64KiB", []string{"expert store: budget 64.0 KiB", "resident", "hits", "evictions", "read_bytes", "per generated token"}},
		{"auto", []string{"expert store: auto budget", "plain mmap, no pager", "read_bytes", "per generated token"}},
	} {
		code, out, errs := run(t, append(args, "--expert-mem", tc.mem)...)
		if code != 0 {
			t.Fatalf("--expert-mem %s: exit %d: %s", tc.mem, code, errs)
		}
		if want == "" {
			want = out
		} else if out != want {
			t.Errorf("--expert-mem %s: output %q, plain mmap gave %q", tc.mem, out, want)
		}
		for _, s := range tc.errs {
			if !strings.Contains(errs, s) {
				t.Errorf("--expert-mem %s: stderr lacks %q:\n%s", tc.mem, s, errs)
			}
		}
		if tc.mem == "64KiB" && strings.Contains(errs, "evictions   0 ") {
			t.Errorf("a 64 KiB budget evicted nothing:\n%s", errs)
		}
	}
}

func TestPagerFlagsInvalid(t *testing.T) {
	for _, flags := range [][]string{
		{"--expert-mem", "0"}, {"--expert-mem", "5 parsecs"}, {"--expert-policy", "fifo"},
		{"--expert-evict", "burn"}, {"--expert-lambda", "-1"}, {"--expert-predict-top", "-2"},
	} {
		code, _, errs := run(t, append([]string{"run", "-m", "x.gguf", "-p", "hi"}, flags...)...)
		if code == 0 || !strings.Contains(errs, strings.TrimPrefix(flags[0], "--")) && !strings.Contains(errs, "experts:") {
			t.Errorf("%v: exit %d, stderr %q", flags, code, errs)
		}
	}
}

func TestPagerNotWithNodes(t *testing.T) {
	code, _, errs := run(t, "run", "-m", "x.gguf", "-p", "hi", "--nodes", "127.0.0.1:7070", "--expert-mem", "1GiB")
	if code == 0 || !strings.Contains(errs, "single-node") {
		t.Errorf("--expert-mem with --nodes: exit %d, stderr %q", code, errs)
	}
}
