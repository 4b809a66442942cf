package model

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	synthgen "github.com/inference-x/inference-x/synth"
)

// TestForwardOnTruncatedFile truncates the model file under a Runner
// (two threads, so pool workers read the mapping too), dense and MoE: the
// Forward fails with gguf.ErrFileChanged instead of the process dying of
// SIGBUS, File.Check reports it, and once the same inode holds the old
// bytes again the same Runner gives the same logits as before.
func TestForwardOnTruncatedFile(t *testing.T) {
	dir := t.TempDir()
	stories, err := os.ReadFile(testenv.Shared(t, "models/stories260K/stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	dense := filepath.Join(dir, "dense.gguf")
	if err := os.WriteFile(dense, stories, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := synthgen.Preset("mixtral-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.KVHeads, c.Vocab = 2, 128, 256, 4, 2, 512
	moe := filepath.Join(dir, "moe.gguf")
	if _, err := synthgen.WriteFile(context.Background(), c, synthgen.Options{Type: "Q8_0", Seed: 3, Threads: 2}, moe); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dense, moe} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			r := m.NewRunner(Options{Threads: 2, MaxBatch: 16})
			defer r.Close()
			forward := func() ([]float32, error) {
				seq, err := m.NewSequence(64, KVF32)
				if err != nil {
					t.Fatal(err)
				}
				var b Batch
				for i, tok := range []int32{1, 20, 30, 40} {
					b.Add(seq, tok, i, i == 3)
				}
				l, err := r.Forward(context.Background(), &b)
				return slices.Clone(l), err
			}
			want, err := forward()
			if err != nil {
				t.Fatal(err)
			}

			if err := os.Truncate(path, 4096); err != nil {
				t.Fatal(err)
			}
			if _, err := forward(); !errors.Is(err, gguf.ErrFileChanged) {
				t.Fatalf("Forward on a truncated file: %v, want ErrFileChanged", err)
			} else {
				t.Log(err)
			}
			if err := f.Check(); !errors.Is(err, gguf.ErrFileChanged) {
				t.Errorf("Check: %v", err)
			}

			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := forward()
			if err != nil {
				t.Fatalf("Forward after the file is back: %v", err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("logits differ after the fault")
			}
		})
	}
}
