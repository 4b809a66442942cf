package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/shard"
	"github.com/inference-x/inference-x/synth"
)

// TestCoordinatorShardAlone: the coordinator's file from ixctl split holds
// no experts, so every command that would compute them in process says so
// and how to run it, instead of failing at the first MoE layer.
func TestCoordinatorShardAlone(t *testing.T) {
	dir := t.TempDir()
	c, err := synth.Preset("kimi-k2-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.ExpertFF, c.Vocab, c.Experts = 2, 128, 128, 2, 32, 512, 8
	c.QLoraRank, c.KVLoraRank, c.RopeDim, c.NopeDim, c.VHeadDim = 32, 32, 32, 32, 32
	whole := filepath.Join(dir, "kimi.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 1}, whole); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(whole)
	if err != nil {
		t.Fatal(err)
	}
	pf := router.PlacementFile{Nodes: []router.PlacementNode{{Name: "a", Experts: "0-7"}}}
	_, err = shard.Split(context.Background(), f, shard.SplitConfig{Placement: &pf, Out: filepath.Join(dir, "shards"), Model: "kimi.gguf"})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	coord := filepath.Join(dir, "shards", shard.CoordinatorFile)
	text := filepath.Join(dir, "text.txt")
	writeFile(t, text, strings.Repeat("the quick brown fox jumps over the lazy dog ", 200))
	for _, args := range [][]string{
		{"run", "-m", coord, "-p", "hello", "-n", "2"},
		{"bench", "-m", coord, "-p", "8", "-n", "2", "-r", "1"},
		{"perplexity", "-m", coord, "-f", text, "--ctx", "64"},
	} {
		code, _, errs := run(t, args...)
		if code != 1 || !strings.Contains(errs, "ixctl split") || !strings.Contains(errs, "--local-experts=false") {
			t.Errorf("%s on the coordinator shard: exit %d, stderr %q", args[0], code, errs)
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
