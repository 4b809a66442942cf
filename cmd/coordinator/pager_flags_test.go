package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestRunExpertMem runs a 384-expert deepseek2 model with plain mmap, a
// pager budget that forces evictions and the auto budget: the greedy
// output is the same and --expert-stats reports the pager. (The model has
// one MoE layer, so there is no next layer to predict.)
func TestRunExpertMem(t *testing.T) {
	m := filepath.Join(testenv.Shared(t, "testdata/models"), "deepseek2-384.Q8_0.gguf")
	args := []string{"run", "-m", m, "--prompt-tokens", "1,300,301,302", "-n", "12", "--temp", "0", "--expert-stats", "-t", "2"}
	var want string
	for i, mem := range []string{"plain", "64KiB", "auto"} {
		code, out, errs := run(t, append(args, "--expert-mem", mem)...)
		if code != 0 {
			t.Fatalf("--expert-mem %s: exit %d: %s", mem, code, errs)
		}
		if i == 0 {
			want = out
			if !strings.Contains(errs, "plain mmap, no pager") {
				t.Errorf("plain: stderr lacks the store line:\n%s", errs)
			}
			continue
		}
		if out != want {
			t.Errorf("--expert-mem %s: output %q, plain mmap gave %q", mem, out, want)
		}
		for _, s := range []string{"expert store: budget", "resident", "hits", "evictions", "read_bytes", "per generated token"} {
			if !strings.Contains(errs, s) {
				t.Errorf("--expert-mem %s: stderr lacks %q:\n%s", mem, s, errs)
			}
		}
		if mem == "64KiB" && strings.Contains(errs, "evictions   0 ") {
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
