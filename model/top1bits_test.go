package model

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestGenerateTop1Bits replays every greedy-generation reference (the
// prompt in one batch with only the last logits asked for, then one token
// per Forward) and checks the winning logit of every step against
// llama.cpp's top1_logit bit for bit: the decode path, and the prompt
// batch whose last layer llama.cpp runs on the output row only.
func TestGenerateTop1Bits(t *testing.T) {
	stories := testenv.Shared(t, "models/stories260K")
	models := testenv.Shared(t, "testdata/models")
	a, _ := filepath.Glob(filepath.Join(stories, "ref", "*.generate.json"))
	b, _ := filepath.Glob(filepath.Join(models, "*.generate.json"))
	if len(a) < 20 || len(b) < 10 {
		t.Fatalf("found %d + %d generate references", len(a), len(b))
	}
	for _, p := range append(a, b...) {
		t.Run(filepath.Base(p), func(t *testing.T) {
			var ref struct {
				Model     string                   `json:"model"`
				Prompt    struct{ Tokens []int32 } `json:"prompt"`
				Generated struct{ Tokens []int32 } `json:"generated"`
				Top1      []float32                `json:"top1_logit"`
			}
			readJSON(t, p, &ref)
			dir := models
			if filepath.Base(filepath.Dir(p)) == "ref" {
				dir = stories
			}
			m := openModel(t, filepath.Join(dir, ref.Model))
			r := m.NewRunner(Options{Threads: 2, MaxBatch: 64})
			defer r.Close()
			seq, err := m.NewSequence(512, KVF32)
			if err != nil {
				t.Fatal(err)
			}
			var top []float32
			keep := func(_ int, l []float32) error {
				mx := l[0]
				for _, v := range l {
					mx = max(mx, v)
				}
				top = append(top, mx)
				return nil
			}
			ctx := context.Background()
			if err := r.Eval(ctx, seq, ref.Prompt.Tokens, false, keep); err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(ref.Generated.Tokens); i++ {
				if err := r.Eval(ctx, seq, ref.Generated.Tokens[i:i+1], false, keep); err != nil {
					t.Fatal(err)
				}
			}
			for i := range top {
				if math.Float32bits(top[i]) != math.Float32bits(ref.Top1[i]) {
					t.Errorf("step %d: top-1 logit %g, llama.cpp %g", i, top[i], ref.Top1[i])
				}
			}
		})
	}
}
