package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOtherWeightsRefused runs expert nodes serving a model of the same
// shape as the coordinator's but other weights (another seed): the
// coordinator refuses them, naming a tensor that differs, with --nodes
// and when they join by gossip; the same weights are accepted.
func TestOtherWeightsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	bin := binaries(t)
	dir := t.TempDir()
	run := func(name string, args ...string) (string, string, error) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	synth := func(name, seed string) string {
		path := filepath.Join(dir, name)
		if _, errs, err := run("ixctl", "synth", "--arch", "qwen2moe", "--type", "Q8_0", "--seed", seed,
			"--out", path, "--no-progress"); err != nil {
			t.Fatalf("ixctl synth: %v\n%s", err, errs)
		}
		return path
	}
	mine, other := synth("mine.gguf", "1"), synth("other.gguf", "2")
	if _, err := os.Stat(mine + ".ixhash"); err == nil {
		t.Fatal("a digest cache exists before any node or coordinator ran")
	}
	args := []string{"run", "--prompt-tokens", "68,12,400", "-n", "4", "--temp", "0", "--ctx", "64", "-t", "1", "--local-experts=false"}
	differs := regexp.MustCompile(`serves a different model: tensor blk\.\d+\.ffn_(gate|up|down)_exps\.weight differs`)

	_, logs := startProc(t, filepath.Join(bin, "expertnode"), "-m", other, "--listen", "127.0.0.1:0", "--id", "rogue", "--threads", "1")
	rogue := waitLog(t, logs, servingAddr, "rogue serving")[1]
	_, errs, err := run("coordinator", append(args, "-m", mine, "--nodes", rogue)...)
	if err == nil || !differs.MatchString(errs) {
		t.Fatalf("--nodes with other weights: err %v, want a refusal naming a tensor:\n%s", err, errs)
	}
	if _, err := os.Stat(mine + ".ixhash"); err != nil {
		t.Fatalf("the coordinator did not cache its digests: %v", err)
	}

	_, logs = startProc(t, filepath.Join(bin, "expertnode"), "-m", mine, "--listen", "127.0.0.1:0", "--id", "good", "--threads", "1")
	good := waitLog(t, logs, servingAddr, "good serving")[1]
	if _, errs, err := run("coordinator", append(args, "-m", mine, "--nodes", good)...); err != nil {
		t.Fatalf("--nodes with the same weights: %v\n%s", err, errs)
	}

	// gossip: the rogue joins and is not given experts
	_, clogs := startProc(t, filepath.Join(bin, "coordinator"), "serve", "-m", mine, "--http", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--local-experts=false", "-t", "1", "--slots", "1",
		"--ctx", "64", "--rebalance-interval", "1s", "--cluster-id", "coord")
	seed := waitLog(t, clogs, gossipAddr, "coordinator gossip")[1]
	_, _ = startProc(t, filepath.Join(bin, "expertnode"), "-m", other, "--listen", "127.0.0.1:0", "--id", "rogue2",
		"--gossip", "127.0.0.1:0", "--join", seed, "--threads", "1")
	waitLog(t, clogs, differs, "the coordinator refusing the rogue member")
	if strings.Contains(clogs.String(), `msg="expert node joined" node=rogue2`) {
		t.Fatalf("the rogue member was given experts:\n%s", clogs.String())
	}
}
