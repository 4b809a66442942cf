package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestShardProcesses cuts a small Kimi-K2-shaped model with `ixctl split`
// for three nodes (replication 2), starts each expertnode on its own shard
// file and the coordinator on the coordinator file (no expert weights,
// --local-experts=false), all as processes on loopback ports, and checks
// that greedy generation prints what single-node mode prints on the whole
// model. It also checks the clear refusals: the coordinator file alone,
// the coordinator file on an expert node, and experts a shard lacks.
func TestShardProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	bin := binaries(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "kimi.gguf")
	run := func(name string, args ...string) (string, string, error) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if _, errs, err := run("ixctl", "synth", "--preset", "kimi-k2-mini", "--layers", "3", "--dim", "256", "--ff", "256",
		"--heads", "2", "--experts", "32", "--expert-ff", "32", "--vocab", "512", "--q-lora", "64", "--kv-lora", "64",
		"--type", "Q4_K_M", "--seed", "5", "--out", model, "--no-progress"); err != nil {
		t.Fatalf("ixctl synth: %v\n%s", err, errs)
	}
	plan := filepath.Join(dir, "placement.json")
	if err := os.WriteFile(plan, []byte(`{"nodes": [{"name": "a", "experts": "0-21"},
		{"name": "b", "experts": "11-31"}, {"name": "c", "experts": "0-10,22-31"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	shards := filepath.Join(dir, "shards")
	if _, errs, err := run("ixctl", "split", model, "--plan", plan, "--out", shards, "--no-progress"); err != nil {
		t.Fatalf("ixctl split: %v\n%s", err, errs)
	}
	coordFile := filepath.Join(shards, "coordinator.gguf")
	args := []string{"run", "--prompt-tokens", "68,12,400,33,71", "-n", "24", "--temp", "0", "--ctx", "128", "-t", "1"}
	want, errs, err := run("coordinator", append(args, "-m", model)...)
	if err != nil {
		t.Fatalf("single-node run: %v\n%s", err, errs)
	}

	var addrs []string
	for _, n := range []string{"a", "b", "c"} {
		_, logs := startProc(t, filepath.Join(bin, "expertnode"), "-m", filepath.Join(shards, n+".gguf"),
			"--listen", "127.0.0.1:0", "--id", n, "--threads", "1", "--health-listen", "off")
		addrs = append(addrs, waitLog(t, logs, servingAddr, n+" serving")[1])
	}
	got, errs, err := run("coordinator", append(args, "-m", coordFile, "--nodes", strings.Join(addrs, ","), "--local-experts=false")...)
	if err != nil {
		t.Fatalf("coordinator on its shard: %v\n%s", err, errs)
	}
	if got != want {
		t.Fatalf("split cluster output differs from single-node output:\ncluster: %q\nsingle:  %q", got, want)
	}
	t.Logf("split cluster and single node print %q", got)

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"coordinator shard alone", append([]string{"coordinator"}, append(args, "-m", coordFile)...), "no expert weights"},
		{"coordinator shard on a node", []string{"expertnode", "-m", coordFile, "--listen", "127.0.0.1:0"}, "no expert weights"},
		{"expert not in the shard", []string{"expertnode", "-m", filepath.Join(shards, "a.gguf"), "--listen", "127.0.0.1:0", "--experts", "30"}, "not in this shard"},
	} {
		_, errs, err := run(c.args[0], c.args[1:]...)
		if err == nil || !strings.Contains(errs, c.want) {
			t.Errorf("%s: %v, stderr %q; want a failure saying %q", c.name, err, errs, c.want)
		}
	}
}
