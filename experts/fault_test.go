package experts_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/synth"
)

// TestStoreOnTruncatedFile: an expert node's Store whose file is
// truncated under it fails Load and Forward with gguf.ErrFileChanged (the
// gRPC handler's goroutine and the pool workers recover the SIGBUS), and
// works again once the same inode holds the old bytes.
func TestStoreOnTruncatedFile(t *testing.T) {
	c, err := synth.Preset("mixtral-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.KVHeads, c.Vocab = 2, 128, 256, 4, 2, 512
	path := filepath.Join(t.TempDir(), "moe.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 3, Threads: 2}, path); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := experts.NewStore(f, experts.StoreConfig{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b := experttest.Batch(1, 8, c.ExpertsUsed, c.Embd, c.Experts, gguf.TypeQ8_0)
	want := make([]float32, b.N*b.Embd)
	if err := s.Forward(ctx, 1, b, want); err != nil {
		t.Fatal(err)
	}

	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, b.N*b.Embd)
	if err := s.Forward(ctx, 1, b, got); !errors.Is(err, gguf.ErrFileChanged) {
		t.Errorf("Forward on a truncated file: %v", err)
	}
	if err := s.Load(ctx, 0, []int{0, 1, 2}); !errors.Is(err, gguf.ErrFileChanged) {
		t.Errorf("Load on a truncated file: %v", err)
	}

	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Forward(ctx, 1, b, got); err != nil {
		t.Fatalf("Forward once the file is back: %v", err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("output %d differs after the fault: %v, want %v", i, got[i], want[i])
		}
	}
}
