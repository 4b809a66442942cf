package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
)

func llamaref(t testing.TB) string { return testenv.Llamaref(t) }

type peerResult struct {
	OK     bool        `json:"ok"`
	Error  string      `json:"error"`
	Log    string      `json:"log"`
	Desc   string      `json:"desc"`
	NVocab int         `json:"n_vocab"`
	Logits [][]float64 `json:"logits"`
}

// peer runs llamaref and fails the test unless it reports ok.
func peer(t *testing.T, args ...string) peerResult {
	t.Helper()
	raw, err := exec.Command(llamaref(t), args...).Output()
	var r peerResult
	if jerr := json.Unmarshal(raw, &r); err != nil || jerr != nil || !r.OK {
		if len(raw) > 2000 {
			raw = raw[len(raw)-2000:]
		}
		t.Fatalf("llamaref %s: %v\n%s", strings.Join(args, " "), err, raw)
	}
	return r
}

func canQuantize(t gguf.Type) bool {
	f, err := kernels.Lookup(t)
	return err == nil && f.Quantize != nil
}

// TestLlamaCppLoadsEveryArch writes each architecture in several types and
// has llama.cpp load it and compute logits.
func TestLlamaCppLoadsEveryArch(t *testing.T) {
	llamaref(t)
	dir := t.TempDir()
	types := []string{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q4_K", "Q6_K", "IQ4_XS", "IQ3_M", "IQ2_XXS", "IQ1_M", "TQ1_0", "TQ2_0", "MXFP4_MOE"}
	if testing.Short() {
		types = []string{"Q8_0", "Q4_K_M"}
	}
	for _, arch := range Architectures() {
		for _, typ := range types {
			t.Run(arch+"/"+typ, func(t *testing.T) {
				c, _ := DefaultConfig(arch)
				_, _, err := Plan(c, Options{Type: typ})
				if err != nil {
					if strings.Contains(err.Error(), "cannot quantize") {
						t.Skipf("%v", err)
					}
					t.Fatal(err)
				}
				p := filepath.Join(dir, arch+"."+typ+".gguf")
				if _, err := WriteFile(context.Background(), c, Options{Type: typ, Seed: 5}, p); err != nil {
					t.Fatal(err)
				}
				r := peer(t, "logits", p, "--tokens", "1,300,301,302", "--no-repack", "--threads", "2")
				if r.NVocab != c.Vocab {
					t.Errorf("llama.cpp sees %d tokens, want %d", r.NVocab, c.Vocab)
				}
				checkLogits(t, r.Logits)
				os.Remove(p)
			})
		}
	}
}

func checkLogits(t *testing.T, rows [][]float64) {
	t.Helper()
	for _, row := range rows {
		var sum, sum2 float64
		for _, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatal("llama.cpp computed a non-finite logit")
			}
			sum += v
			sum2 += v * v
		}
		n := float64(len(row))
		if std := math.Sqrt(sum2/n - sum*sum/n/n); std < 0.5 || std > 10 {
			t.Errorf("logits std %.2f, want a few units", std)
		}
	}
}

// TestSameAsLlamaQuantize: a model written directly in a preset is
// byte-identical to llama.cpp quantizing the same model written as F32.
func TestSameAsLlamaQuantize(t *testing.T) {
	llamaref(t)
	dir := t.TempDir()
	cases := []struct{ arch, typ string }{
		{"llama", "Q4_K_M"}, {"qwen2", "Q5_K_M"}, {"qwen3", "Q4_0"}, {"qwen2moe", "Q3_K_M"},
		{"qwen3moe", "Q6_K"}, {"deepseek2", "Q4_K_M"}, {"deepseek2", "IQ2_XXS"},
		{"llama", "TQ1_0"}, {"qwen3moe", "TQ2_0"},
	}
	if testing.Short() {
		cases = cases[:1]
	}
	for _, c := range cases {
		t.Run(c.arch+"/"+c.typ, func(t *testing.T) {
			cfg, _ := DefaultConfig(c.arch)
			f32 := filepath.Join(dir, c.arch+".F32.gguf")
			if _, err := WriteFile(context.Background(), cfg, Options{Seed: 11}, f32); err != nil {
				t.Fatal(err)
			}
			direct := filepath.Join(dir, c.arch+"."+c.typ+".gguf")
			rep, err := WriteFile(context.Background(), cfg, Options{Type: c.typ, Seed: 11}, direct)
			if err != nil {
				t.Fatal(err)
			}
			ref := filepath.Join(dir, "ref.gguf")
			args := []string{"quantize", f32, ref, c.typ}
			if rep.Imatrix == "ones" {
				args = append(args, "--imatrix-ones")
			}
			peer(t, args...)
			a, _ := os.ReadFile(direct)
			b, _ := os.ReadFile(ref)
			if !bytes.Equal(a, b) {
				t.Errorf("synth %s differs from llama-quantize(synth F32) (%d vs %d bytes)", c.typ, len(a), len(b))
			}
		})
	}
}

// TestPresetsLoad writes each preset's structure at a test-friendly size
// and has llama.cpp run it.
func TestPresetsLoad(t *testing.T) {
	llamaref(t)
	dir := t.TempDir()
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			c, _ := Preset(name)
			c.Layers = max(2, c.LeadingDense+1)
			c.Embd, c.Vocab = 256, 1024
			switch c.Arch {
			case "deepseek2":
				c.Heads, c.FF, c.ExpertFF, c.QLoraRank, c.KVLoraRank = 4, 512, 32, 128, 128
			case "qwen3moe":
				c.Heads, c.KVHeads, c.HeadDim, c.ExpertFF = 4, 2, 64, 64
			default:
				c.Heads, c.KVHeads, c.FF = 4, max(1, 4*c.KVHeads/max(c.Heads, 1)), 512
			}
			p := filepath.Join(dir, name+".gguf")
			if _, err := WriteFile(context.Background(), c, Options{Type: "Q8_0", Seed: 1}, p); err != nil {
				t.Fatal(err)
			}
			r := peer(t, "logits", p, "--tokens", "1,300,301", "--no-repack", "--threads", "2")
			checkLogits(t, r.Logits)
		})
	}
}

// TestUpcycleMatchesDense: llama.cpp's logits on stories260K upcycled to
// 64 experts (top-8, no noise) equal its logits on the dense model.
func TestUpcycleMatchesDense(t *testing.T) {
	llamaref(t)
	dense := testenv.Shared(t, "models/stories260K/stories260K.gguf")
	dir := t.TempDir()
	moe := filepath.Join(dir, "stories-moe.gguf")
	in, err := gguf.Open(dense)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.Create(moe)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Upcycle(context.Background(), in, w, UpcycleConfig{Experts: 64, ExpertsUsed: 8, Seed: 1})
	in.Close()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Experts != 64 || rep.FF != 172 || rep.Layers != 5 {
		t.Errorf("report %+v", rep)
	}
	var toks []string
	for _, id := range []int{1, 403, 407, 261, 300, 500, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100} {
		toks = append(toks, strconv.Itoa(id))
	}
	args := []string{"--tokens", strings.Join(toks, ","), "--no-repack", "--threads", "1"}
	want := peer(t, append([]string{"logits", dense}, args...)...)
	got := peer(t, append([]string{"logits", moe}, args...)...)
	if len(got.Logits) != len(want.Logits) {
		t.Fatalf("%d logit rows, want %d", len(got.Logits), len(want.Logits))
	}
	for p := range want.Logits {
		var maxRef, maxDiff float64
		for v, x := range want.Logits[p] {
			maxRef = max(maxRef, math.Abs(x))
			maxDiff = max(maxDiff, math.Abs(x-got.Logits[p][v]))
		}
		if maxDiff > 1e-4*maxRef {
			t.Errorf("position %d: max |diff| %.3g > 1e-4 × max |logit| %.3g", p, maxDiff, maxRef)
		}
	}
}

// TestUpcycleNoiseLoads: noisy experts re-encoded in a K-quant type load
// and run in llama.cpp, and differ from the dense model.
func TestUpcycleNoiseLoads(t *testing.T) {
	llamaref(t)
	dir := t.TempDir()
	c, _ := DefaultConfig("qwen3")
	dense := filepath.Join(dir, "q3.gguf")
	if _, err := WriteFile(context.Background(), c, Options{Type: "Q4_K_M", Seed: 2}, dense); err != nil {
		t.Fatal(err)
	}
	in, err := gguf.Open(dense)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	moe := filepath.Join(dir, "q3moe.gguf")
	w, _ := os.Create(moe)
	rep, err := Upcycle(context.Background(), in, w, UpcycleConfig{Experts: 4, ExpertsUsed: 2, Noise: 0.05, Seed: 3, Threads: 2})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if rep.ArchOut != "qwen3moe" {
		t.Errorf("arch %s, want qwen3moe", rep.ArchOut)
	}
	r := peer(t, "logits", moe, "--tokens", "1,300,301", "--no-repack", "--threads", "2")
	checkLogits(t, r.Logits)

}
