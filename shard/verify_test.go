package shard_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/shard"
)

// TestShardChangedAfterSplit: an expert shard whose expert data was
// changed after the split (its metadata, and so its fingerprint, kept) is
// refused at open, naming the tensor; the untouched shard opens and
// caches its digests.
func TestShardChangedAfterSplit(t *testing.T) {
	dir := t.TempDir()
	path := kimiMini(t, dir)
	whole, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	experts, err := whole.Int("deepseek2.expert_count")
	whole.Close()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "shards")
	man := split(t, path, out, int(experts))
	file := filepath.Join(out, man.Nodes[0].File)
	n, err := shard.OpenNode(file, shard.NodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if _, err := os.Stat(file + gguf.HashSuffix); err != nil {
		t.Fatalf("no digest cache beside the shard: %v", err)
	}

	// flip one byte in the middle of an expert tensor, in a copy (a new
	// inode, as cp over a file gives a new mtime)
	f, err := gguf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	var name string
	for _, tn := range f.Tensors {
		if len(tn.Dims) == 3 && tn.Dims[2] > 0 {
			off, name = f.DataOffset(0)+tn.Offset+tn.Size/2, tn.Name
			break
		}
	}
	f.Close()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	changed := filepath.Join(out, "changed.gguf")
	if err := os.WriteFile(changed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = shard.OpenNode(changed, shard.NodeConfig{})
	if !errors.Is(err, shard.ErrChanged) {
		t.Fatalf("open a changed shard: %v, want ErrChanged", err)
	}
	if !strings.Contains(err.Error(), name) {
		t.Fatalf("the error does not name tensor %s: %v", name, err)
	}
}
