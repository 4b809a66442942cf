package quantize

import (
	"fmt"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// llamaTensors lists a llama model's tensors (F32) as convert writes them.
func llamaTensors(layers int, embd, ff, kv, vocab int64, experts int64, tied bool) []TensorInfo {
	var ts []TensorInfo
	add := func(name string, dims ...int64) {
		ts = append(ts, TensorInfo{Name: name, Type: gguf.TypeF32, Dims: dims})
	}
	add("token_embd.weight", embd, vocab)
	add("output_norm.weight", embd)
	if !tied {
		add("output.weight", embd, vocab)
	}
	for i := 0; i < layers; i++ {
		b := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		add(b("attn_norm.weight"), embd)
		add(b("attn_q.weight"), embd, embd)
		add(b("attn_k.weight"), embd, kv)
		add(b("attn_v.weight"), embd, kv)
		add(b("attn_output.weight"), embd, embd)
		add(b("ffn_norm.weight"), embd)
		if experts > 0 {
			add(b("ffn_gate_inp.weight"), embd, experts)
			add(b("ffn_gate_exps.weight"), embd, ff, experts)
			add(b("ffn_up_exps.weight"), embd, ff, experts)
			add(b("ffn_down_exps.weight"), ff, embd, experts)
		} else {
			add(b("ffn_gate.weight"), embd, ff)
			add(b("ffn_up.weight"), embd, ff)
			add(b("ffn_down.weight"), ff, embd)
		}
	}
	return ts
}

func mustTarget(t *testing.T, name string, pure bool) Target {
	t.Helper()
	tg, err := ParseTarget(name, pure)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func planTypes(t *testing.T, info ModelInfo, target string, imatrix bool, ts []TensorInfo) map[string]gguf.Type {
	t.Helper()
	p, err := NewPlan(info, mustTarget(t, target, false), imatrix, ts)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]gguf.Type{}
	for _, c := range p.Choices {
		m[c.Name] = c.To
	}
	return m
}

func TestPlanQ4KMLlama7B(t *testing.T) {
	// Llama-2-7B's shape: llama.cpp's Q4_K_M gives attn_v and ffn_down Q6_K
	// in the layers use_more_bits picks, Q4_K elsewhere, output Q6_K.
	ts := llamaTensors(32, 4096, 11008, 4096, 32000, 0, false)
	got := planTypes(t, ModelInfo{Arch: "llama", Layers: 32, Heads: 32, KVHeads: 32}, "Q4_K_M", false, ts)
	more := map[int]bool{}
	for _, i := range []int{0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31} {
		more[i] = true
	}
	for i := 0; i < 32; i++ {
		want := gguf.TypeQ4_K
		if more[i] {
			want = gguf.TypeQ6_K
		}
		for _, n := range []string{"attn_v", "ffn_down"} {
			name := fmt.Sprintf("blk.%d.%s.weight", i, n)
			if got[name] != want {
				t.Errorf("%s: %v, want %v", name, got[name], want)
			}
		}
		for _, n := range []string{"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"} {
			if name := fmt.Sprintf("blk.%d.%s.weight", i, n); got[name] != gguf.TypeQ4_K {
				t.Errorf("%s: %v, want Q4_K", name, got[name])
			}
		}
		if name := fmt.Sprintf("blk.%d.attn_norm.weight", i); got[name] != gguf.TypeF32 {
			t.Errorf("%s: %v, want F32 (norms are never quantized)", name, got[name])
		}
	}
	if got["output.weight"] != gguf.TypeQ6_K || got["token_embd.weight"] != gguf.TypeQ4_K {
		t.Errorf("output %v token_embd %v, want Q6_K and Q4_K", got["output.weight"], got["token_embd.weight"])
	}
}

func TestPlanRules(t *testing.T) {
	dense := llamaTensors(8, 256, 512, 128, 512, 0, false)
	tied := llamaTensors(8, 256, 512, 128, 512, 0, true)
	moe8 := llamaTensors(8, 256, 512, 64, 512, 8, false)
	llama := ModelInfo{Arch: "llama", Layers: 8, Heads: 4, KVHeads: 2}
	llama8 := ModelInfo{Arch: "llama", Layers: 8, Heads: 4, KVHeads: 1, Experts: 8}
	cases := []struct {
		name    string
		info    ModelInfo
		target  string
		imatrix bool
		ts      []TensorInfo
		want    map[string]gguf.Type
	}{
		{"tied embeddings take the output's type", llama, "Q4_K_M", false, tied,
			map[string]gguf.Type{"token_embd.weight": gguf.TypeQ6_K}},
		{"Q4_0 output", llama, "Q4_0", false, dense,
			map[string]gguf.Type{"output.weight": gguf.TypeQ6_K, "token_embd.weight": gguf.TypeQ4_0, "blk.0.ffn_down.weight": gguf.TypeQ4_0}},
		{"Q4_0 with imatrix guards the first ffn_down", llama, "Q4_0", true, dense,
			map[string]gguf.Type{"blk.0.ffn_down.weight": gguf.TypeQ4_1, "blk.1.ffn_down.weight": gguf.TypeQ4_0}},
		{"Q2_K", llama, "Q2_K", false, dense,
			map[string]gguf.Type{"blk.3.attn_v.weight": gguf.TypeQ3_K, "blk.3.ffn_down.weight": gguf.TypeQ3_K,
				"blk.3.attn_output.weight": gguf.TypeQ3_K, "blk.3.attn_q.weight": gguf.TypeQ2_K}},
		{"Q3_K_M", llama, "Q3_K_M", false, dense,
			map[string]gguf.Type{"blk.0.attn_v.weight": gguf.TypeQ5_K, "blk.2.attn_v.weight": gguf.TypeQ4_K,
				"blk.0.ffn_down.weight": gguf.TypeQ4_K, "blk.5.attn_output.weight": gguf.TypeQ4_K}},
		{"8 experts: attn_v and attn_k Q8_0, attn_output Q5_K", llama8, "Q4_K_M", false, moe8,
			map[string]gguf.Type{"blk.4.attn_v.weight": gguf.TypeQ8_0, "blk.4.attn_k.weight": gguf.TypeQ8_0,
				"blk.4.attn_output.weight": gguf.TypeQ5_K, "blk.4.ffn_gate_exps.weight": gguf.TypeQ4_K,
				"blk.0.ffn_down_exps.weight": gguf.TypeQ6_K, "blk.4.ffn_gate_inp.weight": gguf.TypeF32}},
		{"MXFP4_MOE: experts MXFP4, the rest Q8_0", llama8, "MXFP4_MOE", false, moe8,
			map[string]gguf.Type{"blk.0.ffn_up_exps.weight": gguf.TypeMXFP4, "blk.0.attn_q.weight": gguf.TypeQ8_0,
				"output.weight": gguf.TypeQ8_0, "token_embd.weight": gguf.TypeQ8_0}},
		{"IQ2_XXS", llama, "IQ2_XXS", true, dense,
			map[string]gguf.Type{"token_embd.weight": gguf.TypeQ2_K, "output.weight": gguf.TypeQ5_K,
				"blk.0.attn_v.weight": gguf.TypeQ2_K, "blk.0.ffn_down.weight": gguf.TypeQ2_K,
				"blk.1.ffn_down.weight": gguf.TypeIQ2_XXS, "blk.1.attn_q.weight": gguf.TypeIQ2_XXS}},
		{"70B: attn_v Q3_K becomes Q5_K", ModelInfo{Arch: "llama", Layers: 80, Heads: 64, KVHeads: 8}, "Q3_K_S", false,
			llamaTensors(80, 256, 512, 32, 512, 0, false),
			map[string]gguf.Type{"blk.10.attn_v.weight": gguf.TypeQ5_K, "blk.10.attn_q.weight": gguf.TypeQ3_K}},
		{"fallbacks: rows of 64 and 96", llama, "Q4_K_M", false, []TensorInfo{
			{"output.weight", gguf.TypeF32, []int64{64, 512}},
			{"blk.0.attn_q.weight", gguf.TypeF32, []int64{64, 64}},
			{"blk.0.ffn_down.weight", gguf.TypeF32, []int64{96, 64}},
			{"blk.1.ffn_down.weight", gguf.TypeF32, []int64{172, 64}},
		}, map[string]gguf.Type{"output.weight": gguf.TypeQ8_0, "blk.0.attn_q.weight": gguf.TypeQ5_0,
			"blk.0.ffn_down.weight": gguf.TypeQ8_0, "blk.1.ffn_down.weight": gguf.TypeF16}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := planTypes(t, c.info, c.target, c.imatrix, c.ts)
			for name, want := range c.want {
				if got[name] != want {
					t.Errorf("%s: %v, want %v", name, got[name], want)
				}
			}
		})
	}
}

func TestPlanPureAndImatrix(t *testing.T) {
	ts := llamaTensors(4, 256, 512, 128, 512, 0, false)
	info := ModelInfo{Arch: "llama", Layers: 4, Heads: 4, KVHeads: 2}
	p, err := NewPlan(info, mustTarget(t, "Q4_K_M", true), false, ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Choices {
		want := gguf.TypeQ4_K
		if !c.Quantizable {
			want = gguf.TypeF32
		}
		if c.To != want {
			t.Errorf("pure: %s is %v, want %v", c.Name, c.To, want)
		}
	}
	for _, name := range []string{"IQ2_XXS", "IQ1_S", "Q2_K_S", "IQ3_XXS"} {
		p, err := NewPlan(info, mustTarget(t, name, false), false, ts)
		if err != nil {
			t.Fatal(err)
		}
		if !p.NeedsImatrix {
			t.Errorf("%s: plan does not need an importance matrix", name)
		}
		if err := CheckPlan(p, false); err == nil || !strings.Contains(err.Error(), "importance matrix") {
			t.Errorf("%s: CheckPlan without imatrix: %v", name, err)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in   string
		name string
		ft   FileType
		base gguf.Type
		pure bool
	}{
		{"q4_k_m", "Q4_K_M", FileTypeQ4_K_M, gguf.TypeQ4_K, false},
		{"Q4_K", "Q4_K", FileTypeQ4_K_M, gguf.TypeQ4_K, true},
		{"MXFP4_MOE", "MXFP4_MOE", FileTypeMXFP4MoE, gguf.TypeMXFP4, false},
		{"mxfp4", "MXFP4", FileTypeMXFP4MoE, gguf.TypeMXFP4, true},
		{"IQ2_S", "IQ2_S", FileTypeIQ2_S, gguf.TypeIQ2_XS, false},
		{"f16", "F16", FileTypeF16, gguf.TypeF16, false},
	} {
		tg, err := ParseTarget(c.in, false)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if tg.Name != c.name || tg.FileType != c.ft || tg.Base != c.base || tg.Pure != c.pure {
			t.Errorf("%s: got %+v", c.in, tg)
		}
	}
	_, err := ParseTarget("Q4_K_X", false)
	if err == nil || !strings.Contains(err.Error(), "Q4_K_M") || !strings.Contains(err.Error(), "IQ4_XS") {
		t.Errorf("unknown type error should list the valid names: %v", err)
	}
}

func TestLlamaOrder(t *testing.T) {
	ts := []TensorInfo{
		{Name: "blk.10.attn_q.weight"}, {Name: "token_embd.weight"}, {Name: "blk.2.ffn_up.weight"},
		{Name: "blk.2.attn_k.weight"}, {Name: "output.weight"}, {Name: "blk.1.x"},
	}
	var got []string
	for _, i := range LlamaOrder(ts) {
		got = append(got, ts[i].Name)
	}
	want := "output.weight token_embd.weight blk.1.x blk.2.attn_k.weight blk.2.ffn_up.weight blk.10.attn_q.weight"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestNoFallbackForOddRows(t *testing.T) {
	ts := []TensorInfo{{"blk.0.attn_q.weight", gguf.TypeF32, []int64{100, 64}}}
	_, err := NewPlan(ModelInfo{Arch: "llama", Layers: 1}, mustTarget(t, "Q1_0", true), false, ts)
	if err == nil {
		t.Fatal("Q1_0 (blocks of 128) on rows of 100 should have no fallback")
	}
}
