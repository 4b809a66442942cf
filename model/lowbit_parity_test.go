package model

import (
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	synthpkg "github.com/inference-x/inference-x/synth"
)

// TestLiveParityLowbit makes TQ1_0, TQ2_0, MXFP4, Q1_0 and Q2_0 models
// with llama.cpp's own llama-quantize from synthetic F32 files (a dense
// llama, a qwen3moe MoE and a deepseek2 MLA MoE; the --pure files put
// token_embd and the LM head in the low-bit type too, and for MXFP4_MOE
// every tensor, dense layers included, instead of Q8_0 outside the
// experts) and checks that our logits equal the logits llama.cpp computes
// on them right now (llamaref --no-repack --kv f32, the prompt in one batch
// and one token per decode) bit for bit, as for the other types on ggml's
// vec_dot path. These dots run ggml's x86 code (eight float lanes, FMA per
// block, hsum_float_8; Q2_0's generic C with gcc's fused multiply-adds),
// not the scalar generic C (which fails the dense and --pure files; the
// MXFP4_MOE files with MXFP4 only in these tiny experts pass either way:
// their dots' rounding differences rarely survive the Q8_0 quantization and
// the residual additions). NVFP4 is left out: this llama.cpp build refuses
// to quantize to it.
func TestLiveParityLowbit(t *testing.T) {
	ref := testenv.Llamaref(t)
	dir := t.TempDir()
	prompt := []int32{1, 300, 301, 302, 303, 310, 320, 330, 340, 350, 360, 370, 380, 390, 400, 410}
	ids := make([]string, len(prompt))
	for i, id := range prompt {
		ids[i] = strconv.Itoa(int(id))
	}
	type variant struct{ typ, suffix string }
	for _, c := range []struct {
		arch     string
		embd, ff int
		variants []variant
	}{
		{"llama", 512, 1024, []variant{{"TQ1_0", ""}, {"TQ2_0", ""}, {"TQ1_0", "--pure"},
			{"MXFP4_MOE", "--pure"}, {"Q1_0", ""}, {"Q2_0", ""}, {"Q2_0", "--pure"}}},
		{"qwen3moe", 256, 0, []variant{{"TQ1_0", ""}, {"TQ2_0", ""}, {"TQ2_0", "--pure"},
			{"MXFP4_MOE", ""}, {"MXFP4_MOE", "--pure"}, {"Q1_0", ""}, {"Q2_0", ""}}},
		// MLA, shared expert, leading dense layer
		{"deepseek2", 256, 0, []variant{{"TQ1_0", ""}, {"MXFP4_MOE", ""}}},
	} {
		cfg, err := synthpkg.DefaultConfig(c.arch)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Embd = c.embd
		if c.ff != 0 {
			cfg.FF = c.ff
		}
		f32 := filepath.Join(dir, c.arch+".F32.gguf")
		if _, err := synthpkg.WriteFile(context.Background(), cfg, synthpkg.Options{Seed: 3}, f32); err != nil {
			t.Fatal(err)
		}
		for _, v := range c.variants {
			name := c.arch + "." + v.typ + strings.ReplaceAll(v.suffix, "--", "-")
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(dir, name+".gguf")
				args := []string{"quantize", f32, path, v.typ}
				if v.suffix != "" {
					args = append(args, v.suffix)
				}
				peerJSON(t, ref, nil, args...)
				requireTensorsOf(t, path, strings.TrimSuffix(v.typ, "_MOE"))
				m := openModel(t, path)
				for _, mode := range []string{"batch", "incremental"} {
					var want refLogits
					peerJSON(t, ref, &want, "logits", path, "--tokens", strings.Join(ids, ","), "--mode", mode,
						"--no-repack", "--kv", "f32", "--threads", "2")
					want.Model = name + " " + mode
					if mode == "batch" {
						sameRefBits(t, &want, evalPrompt(t, m, prompt, KVF32))
					} else {
						sameRefBits(t, &want, evalIncremental(t, m, prompt, KVF32))
					}
				}
			})
		}
	}
}

// requireTensorsOf fails unless the GGUF file at path holds tensors of the
// ggml type named typ (llama-quantize falls back to other types for rows it
// cannot hold) and logs how many.
func requireTensorsOf(t *testing.T, path, typ string) {
	t.Helper()
	want, err := gguf.ParseType(typ)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for _, ti := range f.Tensors {
		if ti.Type == want {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("%s: no %v tensor", path, want)
	}
	t.Logf("%d of %d tensors in %v", n, len(f.Tensors), want)
}

// peerJSON runs llamaref with args, fails the test unless it reports ok,
// and decodes its output into out (when not nil).
func peerJSON(t *testing.T, llamaref string, out any, args ...string) {
	t.Helper()
	raw, err := exec.Command(llamaref, args...).Output()
	var status struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(raw, &status); err != nil || jerr != nil || !status.OK {
		t.Fatalf("llamaref %s: %v %v %s", strings.Join(args, " "), err, jerr, status.Error)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// sameRefBits fails unless got holds llama.cpp's logits bit for bit at every
// reference position; it logs the distance either way.
func sameRefBits(t *testing.T, want *refLogits, got [][]float32) {
	t.Helper()
	diff := 0
	for i, pos := range want.Positions {
		for v, w := range want.Logits[i] {
			if math.Float32bits(got[pos][v]) != math.Float32bits(w) {
				if diff == 0 {
					t.Errorf("position %d token %d: %g, llama.cpp %g", pos, v, got[pos][v], w)
				}
				diff++
			}
		}
	}
	if diff != 0 {
		t.Errorf("%d logits differ from llama.cpp's", diff)
	}
	compareLogits(t, want, got, false)
}
