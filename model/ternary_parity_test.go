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

	"github.com/inference-x/inference-x/internal/testenv"
	synthpkg "github.com/inference-x/inference-x/synth"
)

// TestLiveParityTernary makes TQ1_0 and TQ2_0 models with llama.cpp's own
// llama-quantize from synthetic F32 files (a dense llama, a qwen3moe MoE
// and a deepseek2 MLA MoE; the --pure files put token_embd and the LM head in the ternary type
// too) and checks that our logits equal the logits llama.cpp computes on
// them right now (llamaref --no-repack --kv f32, the prompt in one batch
// and one token per decode) bit for bit, as for the other types on ggml's
// vec_dot path. The ternary dots run ggml's x86 code
// (eight float lanes, one FMA per block, hsum_float_8), not the scalar
// generic C.
func TestLiveParityTernary(t *testing.T) {
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
		{"llama", 512, 1024, []variant{{"TQ1_0", ""}, {"TQ2_0", ""}, {"TQ1_0", "--pure"}}},
		{"qwen3moe", 256, 0, []variant{{"TQ1_0", ""}, {"TQ2_0", ""}, {"TQ2_0", "--pure"}}},
		{"deepseek2", 256, 0, []variant{{"TQ1_0", ""}}}, // MLA, shared expert, leading dense layer
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
