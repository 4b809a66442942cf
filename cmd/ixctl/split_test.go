package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
)

// TestSplit cuts a small qwen3moe model for two nodes and checks that the
// coordinator file has exactly the non-expert tensors, each node file
// exactly its experts (byte for byte, re-packed), the manifest matches the
// files, and a node file computes its experts as the whole model does once
// global ids are mapped to the shard's (what a loader must do).
func TestSplit(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	if _, errs, code := runIxctl(t, "", "synth", "--arch", "qwen3moe", "--experts", "8", "--type", "Q8_0", "--out", model, "--no-progress"); code != 0 {
		t.Fatalf("synth: %s", errs)
	}
	plan := filepath.Join(dir, "plan.json")
	os.WriteFile(plan, []byte(`{"nodes":[{"name":"a","addr":"127.0.0.1:7071","experts":"0-4"},
		{"name":"b","addr":"127.0.0.1:7072","experts":"3-7","layers":{"1":"1,6"}}]}`), 0o644)
	out := filepath.Join(dir, "shards")
	stdout, errs, code := runIxctl(t, "", "split", model, "--plan", plan, "--out", out, "-o", "json")
	if code != 0 {
		t.Fatalf("split: %s", errs)
	}
	var man Manifest
	if err := json.Unmarshal([]byte(stdout), &man); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(filepath.Join(out, "manifest.json"))
	if !bytes.Equal(bytes.TrimSpace(onDisk), bytes.TrimSpace([]byte(stdout))) {
		t.Fatal("manifest.json differs from the printed manifest")
	}
	for _, mf := range append([]ManifestFile{man.Coordinator}, man.Nodes...) {
		b, err := os.ReadFile(filepath.Join(out, mf.File))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != mf.Bytes || hex.EncodeToString(sum[:]) != mf.SHA256 {
			t.Fatalf("%s: manifest says %d bytes %s", mf.File, mf.Bytes, mf.SHA256)
		}
	}
	if man.Nodes[1].Experts["1"] != "1,6" || man.Nodes[0].Experts["0"] != "0-4" {
		t.Fatalf("manifest experts: %+v", man.Nodes)
	}

	full, err := gguf.Open(model)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	coord, err := gguf.Open(filepath.Join(out, "coordinator.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	for _, ft := range full.Tensors {
		ct, ok := coord.Tensor(ft.Name)
		if strings.Contains(ft.Name, "_exps.") {
			if ok {
				t.Fatalf("coordinator file has %s", ft.Name)
			}
			continue
		}
		if !ok || !bytes.Equal(ct.Data, ft.Data) || ct.Type != ft.Type || !slices.Equal(ct.Dims, ft.Dims) {
			t.Fatalf("coordinator tensor %s differs", ft.Name)
		}
	}

	node, err := gguf.Open(filepath.Join(out, "b.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	if r, _ := node.String(KeyShardRole); r != "expert" {
		t.Fatalf("role %q", r)
	}
	ids1, err := node.Ints(KeyShardExpertsPrefix + "1")
	if err != nil || !slices.Equal(ids1, []int64{1, 6}) {
		t.Fatalf("layer 1 ids %v %v", ids1, err)
	}
	for _, name := range []string{"blk.1.ffn_gate_exps.weight", "blk.1.ffn_down_exps.weight"} {
		nt, _ := node.Tensor(name)
		ft, _ := full.Tensor(name)
		per := len(ft.Data) / int(ft.Dims[2])
		if nt.Dims[2] != 2 || !bytes.Equal(nt.Data[:per], ft.Data[per:2*per]) || !bytes.Equal(nt.Data[per:], ft.Data[6*per:7*per]) {
			t.Fatalf("%s: shard slices are not experts 1 and 6", name)
		}
	}

	// The shard computes expert 6 of layer 1 (its local index 1) exactly
	// as the whole model does.
	whole, err := experts.NewLocal(full, experts.LocalConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	shard, err := experts.NewLocal(node, experts.LocalConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer shard.Close()
	ft, _ := full.Tensor("blk.1.ffn_gate_exps.weight")
	embd := int(ft.Dims[0])
	b := experttest.Batch(3, 2, 1, embd, 8, gguf.TypeF32)
	b.Experts[0], b.Experts[1] = 6, 6
	want := make([]float32, 2*embd)
	if err := whole.Forward(context.Background(), 1, b, want); err != nil {
		t.Fatal(err)
	}
	b.Experts[0], b.Experts[1] = 1, 1 // global 6 is local 1
	got := make([]float32, 2*embd)
	if err := shard.Forward(context.Background(), 1, b, got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatal("the shard's expert differs from the model's")
	}
}
