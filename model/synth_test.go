package model

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
)

var update = flag.Bool("update", false, "regenerate testdata golden logits with llama.cpp's llamaref (../shared/peer)")

// synthModel is a tiny random-weight model for an architecture the
// shared test data lacks. Its golden logits in testdata/NAME.logits.json
// come from llama.cpp (go test -run TestSynthParity -update).
type synthModel struct {
	name      string
	tokenizer string  // shared model whose tokenizer.* keys it borrows
	tokens    []int32 // the prompt
	build     func(s *synth)
}

var synthModels = []synthModel{
	{"qwen2moe-tiny", "qwen3moe-small.F32.gguf", []int32{285, 596, 615, 369, 595, 651, 259, 635}, buildQwen2MoETiny},
	{"deepseek2-lite-tiny", "deepseek2-v3.F32.gguf", []int32{688, 285, 596, 615, 369, 595, 651, 259}, buildDeepseek2LiteTiny},
}

// synth accumulates a model's metadata and tensors with deterministic
// weights: W ~ N(0, 1/fan_in), norms ~ U(0.8, 1.2), embeddings ~ N(0, 1).
type synth struct {
	e     *ggufEdit
	arch  string
	rng   *rand.Rand
	vocab int64 // of the borrowed tokenizer
}

func (s *synth) kv(k string, v any) { s.e.set(s.arch+"."+k, v) }

// weight adds a tensor of dims (row length first) with N(0, std^2) values.
func (s *synth) weight(name string, std float64, dims ...int64) {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(s.rng.NormFloat64() * std)
	}
	s.e.put(name, x, dims...)
}

// matrix adds a [cols, rows] weight with std 1/sqrt(cols).
func (s *synth) matrix(name string, cols, rows int64) {
	s.weight(name, 1/math.Sqrt(float64(cols)), cols, rows)
}

func (s *synth) norm(name string, n int64) {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.8 + 0.4*s.rng.Float64())
	}
	s.e.put(name, x, n)
}

// newSynth starts a model of arch with the tokenizer of the shared file.
func newSynth(t testing.TB, arch, tokenizerFile string, seed uint64) *synth {
	src, err := gguf.Open(tokenizerFile)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s := &synth{e: &ggufEdit{}, arch: arch, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	s.e.set("general.architecture", arch)
	s.e.set("general.name", "synthetic-"+arch)
	for _, kv := range src.KV {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			s.e.kvs = append(s.e.kvs, kv)
		}
	}
	toks, err := src.Array("tokenizer.ggml.tokens")
	if err != nil {
		t.Fatal(err)
	}
	s.vocab = int64(toks.Len())
	s.kv("vocab_size", uint32(s.vocab))
	return s
}

// buildQwen2MoETiny: 2 layers, n_embd 64, 4 heads x 16 (2 KV heads), q/k/v
// biases, neox RoPE, 8 experts top-2 (FFN 32, weights not renormalised),
// a shared expert of FFN 48 gated by sigmoid(ffn_gate_inp_shexp . x).
func buildQwen2MoETiny(s *synth) {
	const embd, layers, nExp, ff, shFF = 64, 2, 8, 32, 48
	s.kv("block_count", uint32(layers))
	s.kv("context_length", uint32(4096))
	s.kv("embedding_length", uint32(embd))
	s.kv("feed_forward_length", uint32(128))
	s.kv("attention.head_count", uint32(4))
	s.kv("attention.head_count_kv", uint32(2))
	s.kv("rope.freq_base", float32(1e6))
	s.kv("attention.layer_norm_rms_epsilon", float32(1e-6))
	s.kv("expert_count", uint32(nExp))
	s.kv("expert_used_count", uint32(2))
	s.kv("expert_feed_forward_length", uint32(ff))
	s.kv("expert_shared_feed_forward_length", uint32(shFF))
	vocab := s.vocab
	s.weight("token_embd.weight", 1, embd, vocab)
	s.norm("output_norm.weight", embd)
	s.weight("output.weight", 3/math.Sqrt(embd), embd, vocab)
	for i := 0; i < layers; i++ {
		s.norm(blk(i, "attn_norm.weight"), embd)
		s.matrix(blk(i, "attn_q.weight"), embd, 64)
		s.weight(blk(i, "attn_q.bias"), 0.1, 64)
		s.matrix(blk(i, "attn_k.weight"), embd, 32)
		s.weight(blk(i, "attn_k.bias"), 0.1, 32)
		s.matrix(blk(i, "attn_v.weight"), embd, 32)
		s.weight(blk(i, "attn_v.bias"), 0.1, 32)
		s.matrix(blk(i, "attn_output.weight"), 64, embd)
		s.norm(blk(i, "ffn_norm.weight"), embd)
		s.matrix(blk(i, "ffn_gate_inp.weight"), embd, nExp)
		s.weight(blk(i, "ffn_gate_exps.weight"), 1/math.Sqrt(embd), embd, ff, nExp)
		s.weight(blk(i, "ffn_up_exps.weight"), 1/math.Sqrt(embd), embd, ff, nExp)
		s.weight(blk(i, "ffn_down_exps.weight"), 1/math.Sqrt(ff), ff, embd, nExp)
		s.weight(blk(i, "ffn_gate_inp_shexp.weight"), 1/math.Sqrt(embd), embd)
		s.matrix(blk(i, "ffn_gate_shexp.weight"), embd, shFF)
		s.matrix(blk(i, "ffn_up_shexp.weight"), embd, shFF)
		s.matrix(blk(i, "ffn_down_shexp.weight"), shFF, embd)
	}
}

// buildDeepseek2LiteTiny is DeepSeek-V2-Lite's shape in small: no q_lora
// (plain attn_q), the older attn_kv_b layout (no *_mla keys, head_count_kv
// = head_count), softmax gating without exp_probs_b, weights neither
// renormalised nor scaled, two shared experts, one leading dense layer,
// YaRN factor 40 with V2's yarn_log_multiplier 0.0707 (mscale != 1).
func buildDeepseek2LiteTiny(s *synth) {
	const embd, layers, heads, nope, rope, v, kvLora, nExp, ff, shared = 64, 2, 4, 32, 16, 32, 64, 16, 32, 2
	s.kv("block_count", uint32(layers))
	s.kv("context_length", uint32(163840))
	s.kv("embedding_length", uint32(embd))
	s.kv("feed_forward_length", uint32(96))
	s.kv("attention.head_count", uint32(heads))
	s.kv("attention.head_count_kv", uint32(heads))
	s.kv("attention.key_length", uint32(nope+rope))
	s.kv("attention.value_length", uint32(v))
	s.kv("rope.dimension_count", uint32(rope))
	s.kv("rope.freq_base", float32(10000))
	s.kv("attention.layer_norm_rms_epsilon", float32(1e-6))
	s.kv("leading_dense_block_count", uint32(1))
	s.kv("attention.q_lora_rank", uint32(0))
	s.kv("attention.kv_lora_rank", uint32(kvLora))
	s.kv("expert_feed_forward_length", uint32(ff))
	s.kv("expert_count", uint32(nExp))
	s.kv("expert_used_count", uint32(4))
	s.kv("expert_shared_count", uint32(shared))
	s.kv("expert_weights_scale", float32(1))
	s.kv("rope.scaling.type", "yarn")
	s.kv("rope.scaling.factor", float32(40))
	s.kv("rope.scaling.original_context_length", uint32(4096))
	s.kv("rope.scaling.yarn_log_multiplier", float32(0.0707))
	vocab := s.vocab
	s.weight("token_embd.weight", 1, embd, vocab)
	s.norm("output_norm.weight", embd)
	s.weight("output.weight", 3/math.Sqrt(embd), embd, vocab)
	for i := 0; i < layers; i++ {
		s.norm(blk(i, "attn_norm.weight"), embd)
		s.matrix(blk(i, "attn_q.weight"), embd, heads*(nope+rope))
		s.matrix(blk(i, "attn_kv_a_mqa.weight"), embd, kvLora+rope)
		s.norm(blk(i, "attn_kv_a_norm.weight"), kvLora)
		s.matrix(blk(i, "attn_kv_b.weight"), kvLora, heads*(nope+v))
		s.matrix(blk(i, "attn_output.weight"), heads*v, embd)
		s.norm(blk(i, "ffn_norm.weight"), embd)
		if i == 0 {
			s.matrix(blk(i, "ffn_gate.weight"), embd, 96)
			s.matrix(blk(i, "ffn_up.weight"), embd, 96)
			s.matrix(blk(i, "ffn_down.weight"), 96, embd)
			continue
		}
		s.matrix(blk(i, "ffn_gate_inp.weight"), embd, nExp)
		s.weight(blk(i, "ffn_gate_exps.weight"), 1/math.Sqrt(embd), embd, ff, nExp)
		s.weight(blk(i, "ffn_up_exps.weight"), 1/math.Sqrt(embd), embd, ff, nExp)
		s.weight(blk(i, "ffn_down_exps.weight"), 1/math.Sqrt(ff), ff, embd, nExp)
		s.matrix(blk(i, "ffn_gate_shexp.weight"), embd, ff*shared)
		s.matrix(blk(i, "ffn_up_shexp.weight"), embd, ff*shared)
		s.matrix(blk(i, "ffn_down_shexp.weight"), ff*shared, embd)
	}
}

// write builds the model file in a temporary folder.
func (sm *synthModel) write(t testing.TB) string {
	t.Helper()
	dir := testenv.Shared(t, "testdata/models")
	arch := strings.SplitN(sm.name, "-", 2)[0]
	s := newSynth(t, arch, filepath.Join(dir, sm.tokenizer), 1)
	sm.build(s)
	return s.e.write(t, sm.name+".gguf")
}

// TestSynthParity checks architectures the shared data lacks against
// llama.cpp's logits for the same synthetic weights.
func TestSynthParity(t *testing.T) {
	for _, sm := range synthModels {
		t.Run(sm.name, func(t *testing.T) {
			path := sm.write(t)
			golden := filepath.Join("testdata", sm.name+".logits.json")
			if *update {
				writeGolden(t, path, golden, sm.tokens)
			}
			ref := readRef(t, golden)
			m := openModel(t, path)
			compareLogits(t, ref, evalPrompt(t, m, ref.Tokens, KVF32), true)
			compareLogits(t, ref, evalIncremental(t, m, ref.Tokens, KVF32), true)
		})
	}
}

// writeGolden runs llama.cpp's llamaref on the model and keeps the fields
// the tests read.
func writeGolden(t *testing.T, model, golden string, tokens []int32) {
	home := os.Getenv("IX_PEER_HOME")
	if home == "" {
		h, _ := os.UserHomeDir()
		home = filepath.Join(h, ".cache", "ix-peer")
	}
	ids := make([]string, len(tokens))
	for i, tok := range tokens {
		ids[i] = strconv.Itoa(int(tok))
	}
	out, err := exec.Command(filepath.Join(home, "bin", "llamaref"), "logits", model,
		"--tokens", strings.Join(ids, ","), "--no-repack", "--kv", "f32").Output()
	if err != nil {
		t.Fatalf("llamaref (install with ../shared/peer/setup.sh): %v", err)
	}
	var full struct {
		OK        bool        `json:"ok"`
		Error     string      `json:"error"`
		Tokens    []int32     `json:"tokens"`
		Positions []int       `json:"positions"`
		Logits    [][]float32 `json:"logits"`
	}
	if err := json.Unmarshal(out, &full); err != nil || !full.OK {
		t.Fatalf("llamaref: %v %s", err, full.Error)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "{\"model\": %q,\n \"source\": \"llama.cpp llamaref logits --no-repack --kv f32 (go test ./model -run TestSynthParity -update)\",\n", filepath.Base(model))
	fmt.Fprintf(&b, " \"tokens\": %s,\n \"positions\": %s,\n \"logits\": [\n", jsonInts(full.Tokens), jsonInts(full.Positions))
	for i, row := range full.Logits {
		b.WriteString("  [")
		for j, v := range row {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		b.WriteString("]")
		if i < len(full.Logits)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString(" ]}\n")
	if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func jsonInts[T int | int32](x []T) string {
	b, _ := json.Marshal(x)
	return string(b)
}
