package model

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
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
// the residual additions). This llama.cpp build refuses to quantize to
// NVFP4, so the NVFP4 files are made by our quantizer (byte-exact with
// ggml's quantize_nvfp4 on the test vectors), and llama.cpp runs them.
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
			{"MXFP4_MOE", "--pure"}, {"Q1_0", ""}, {"Q2_0", ""}, {"Q2_0", "--pure"}, {"NVFP4", ""}}},
		{"qwen3moe", 256, 0, []variant{{"TQ1_0", ""}, {"TQ2_0", ""}, {"TQ2_0", "--pure"},
			{"MXFP4_MOE", ""}, {"MXFP4_MOE", "--pure"}, {"Q1_0", ""}, {"Q2_0", ""}, {"NVFP4", ""}}},
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
				if v.typ == "NVFP4" {
					writeNVFP4(t, f32, path)
				} else {
					peerJSON(t, ref, nil, args...)
				}
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

// writeNVFP4 writes the F32 GGUF file src to dst with every matrix but
// token_embd quantized to NVFP4 (row by row, experts included).
func writeNVFP4(t *testing.T, src, dst string) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nv, err := kernels.Lookup(gguf.TypeNVFP4)
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]gguf.TensorSpec, len(f.Tensors))
	data := make([][]byte, len(f.Tensors))
	for i, ti := range f.Tensors {
		specs[i] = gguf.TensorSpec{Name: ti.Name, Type: ti.Type, Dims: ti.Dims}
		data[i] = ti.Data
		if ti.Type != gguf.TypeF32 || len(ti.Dims) < 2 || ti.Dims[0]%64 != 0 || ti.Name == "token_embd.weight" {
			continue
		}
		x := make([]float32, len(ti.Data)/4)
		for j := range x {
			x[j] = math.Float32frombits(binary.LittleEndian.Uint32(ti.Data[4*j:]))
		}
		q := make([]byte, len(x)/64*36)
		nv.Quantize(q, x, nil)
		specs[i].Type, data[i] = gguf.TypeNVFP4, q
	}
	if err := gguf.WriteFile(dst, f.KV, specs, data); err != nil {
		t.Fatal(err)
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
