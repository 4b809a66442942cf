package model

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
)

// refLogits is a llama.cpp *.logits.json reference.
type refLogits struct {
	Model     string      `json:"model"`
	Tokens    []int32     `json:"tokens"`
	Positions []int       `json:"positions"`
	Logits    [][]float32 `json:"logits"`
}

func readRef(t testing.TB, path string) *refLogits {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r refLogits
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &r
}

// evalPrompt runs tokens through m in one batch (as llama.cpp's batch
// mode does) and returns the logits of every position.
func evalPrompt(t testing.TB, m *Model, tokens []int32, kv KVType) [][]float32 {
	t.Helper()
	r := m.NewRunner(Options{Threads: 2, MaxBatch: len(tokens)})
	defer r.Close()
	seq, err := m.NewSequence(512, kv)
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i, tok := range tokens {
		b.Add(seq, tok, i, true)
	}
	logits, err := r.Forward(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.Vocab
	out := make([][]float32, len(tokens))
	for i := range out {
		out[i] = append([]float32(nil), logits[i*v:(i+1)*v]...)
	}
	return out
}

// compareLogits applies the tolerances of ../shared/testdata/models:
// F32 files within 1e-3 x max|ref| at every position; quantized files the
// same argmax everywhere and mean KL(ref || ours) <= 1e-4.
func compareLogits(t *testing.T, ref *refLogits, got [][]float32, f32 bool) {
	t.Helper()
	compareLogitsKL(t, ref, got, f32, 1e-4)
}

// compareLogitsKL is compareLogits with quantized files held to mean KL
// <= klMax.
func compareLogitsKL(t *testing.T, ref *refLogits, got [][]float32, f32 bool, klMax float64) {
	t.Helper()
	var klSum, worstRel float64
	for i, pos := range ref.Positions {
		want, have := ref.Logits[i], got[pos]
		var maxRef, maxDiff float64
		for v := range want {
			maxRef = max(maxRef, math.Abs(float64(want[v])))
			maxDiff = max(maxDiff, math.Abs(float64(want[v]-have[v])))
		}
		worstRel = max(worstRel, maxDiff/maxRef)
		if f32 && maxDiff > 1e-3*maxRef {
			t.Errorf("position %d: max |diff| %.3g > 1e-3 x max|ref| (%.3g)", pos, maxDiff, maxRef)
		}
		if a, b := argmax(want), argmax(have); a != b && !f32 {
			t.Errorf("position %d: argmax %d, llama.cpp %d", pos, b, a)
		}
		klSum += kl(want, have)
	}
	kl := klSum / float64(len(ref.Positions))
	t.Logf("%s: worst max|diff|/max|ref| %.3g, mean KL %.3g", ref.Model, worstRel, kl)
	if !f32 && kl > klMax {
		t.Errorf("mean KL %.3g > %.3g", kl, klMax)
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// kl returns KL(softmax(p) || softmax(q)) in nats.
func kl(p, q []float32) float64 {
	lp, lq := logSoftmax(p), logSoftmax(q)
	var s float64
	for i := range lp {
		s += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return s
}

func logSoftmax(x []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = max(mx, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - mx - math.Log(sum)
	}
	return out
}

func openModel(t testing.TB, path string) *Model {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestParityDense checks logits against llama.cpp for every dense model
// variant in ../shared/testdata/models and stories260K.
func TestParityDense(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	refs, _ := filepath.Glob(filepath.Join(dir, "llama-dense.*.logits.json"))
	stories := testenv.Shared(t, "models/stories260K/ref")
	more, _ := filepath.Glob(filepath.Join(stories, "stories260K-*.logits.json"))
	refs = append(refs, more...)
	if len(refs) < 10 {
		t.Fatalf("found only %d reference files", len(refs))
	}
	for _, path := range refs {
		name := filepath.Base(path)
		if strings.Contains(name, ".long.") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			ref := readRef(t, path)
			gg := filepath.Join(filepath.Dir(path), ref.Model)
			if strings.HasPrefix(name, "stories260K") {
				gg = filepath.Join(filepath.Dir(filepath.Dir(path)), ref.Model)
			}
			m := openModel(t, gg)
			got := evalPrompt(t, m, ref.Tokens, KVF32)
			f32 := strings.Contains(ref.Model, "F32") || ref.Model == "stories260K.gguf"
			compareLogits(t, ref, got, f32)
		})
	}
}
