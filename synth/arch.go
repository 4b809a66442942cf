package synth

import (
	"fmt"
	"math"

	"github.com/inference-x/inference-x/gguf"
)

// tensorDef is one tensor of a synthetic model and how its values are drawn.
type tensorDef struct {
	Name string
	Dims []int64 // ggml order: Dims[0] is the row length
	// Std is the standard deviation of the normal values; Uniform draws
	// U(0.8, 1.2) instead (norm weights).
	Std     float32
	Uniform bool
}

// Weight scales (../shared/testdata/models/README.md has the same recipe):
// matrices N(0, 1/fan_in), so activations keep unit scale; the LM head
// has gain 3, so logits have a std of about 3 and the argmax is not
// degenerate; token embeddings N(0, 1) (tied: scaled like the LM head);
// norms U(0.8, 1.2); routers N(0, 1/fan_in); selection biases N(0, 0.1²).
const (
	headGain  = 3
	biasStd   = 0.1
	normLo    = 0.8
	normHi    = 1.2
	routerStd = 1 // times 1/sqrt(fan_in)
)

// layout returns the tensors of the model c describes, in the order
// convert_hf_to_gguf.py writes them.
func (c *Config) layout() []tensorDef {
	e := int64(c.Embd)
	var ts []tensorDef
	matrix := func(name string, dims ...int64) {
		ts = append(ts, tensorDef{Name: name, Dims: dims, Std: float32(1 / math.Sqrt(float64(dims[0])))})
	}
	vector := func(name string, n int64, std float32) {
		ts = append(ts, tensorDef{Name: name, Dims: []int64{n}, Std: std})
	}
	norm := func(name string, n int64) {
		ts = append(ts, tensorDef{Name: name, Dims: []int64{n}, Uniform: true})
	}
	headStd := float32(headGain / math.Sqrt(float64(e)))
	embdStd := float32(1)
	if c.Tied {
		embdStd = headStd
	}
	ts = append(ts, tensorDef{Name: "token_embd.weight", Dims: []int64{e, int64(c.Vocab)}, Std: embdStd})
	norm("output_norm.weight", e)
	if !c.Tied {
		ts = append(ts, tensorDef{Name: "output.weight", Dims: []int64{e, int64(c.Vocab)}, Std: headStd})
	}
	for i := 0; i < c.Layers; i++ {
		b := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		norm(b("attn_norm.weight"), e)
		if c.Arch == "deepseek2" {
			c.mlaLayer(i, matrix, norm)
		} else {
			hd := int64(c.headDim())
			q, kv := int64(c.Heads)*hd, int64(c.KVHeads)*hd
			matrix(b("attn_q.weight"), e, q)
			matrix(b("attn_k.weight"), e, kv)
			matrix(b("attn_v.weight"), e, kv)
			if c.Arch == "qwen2" || c.Arch == "qwen2moe" {
				vector(b("attn_q.bias"), q, biasStd)
				vector(b("attn_k.bias"), kv, biasStd)
				vector(b("attn_v.bias"), kv, biasStd)
			}
			if c.Arch == "qwen3" || c.Arch == "qwen3moe" {
				norm(b("attn_q_norm.weight"), hd)
				norm(b("attn_k_norm.weight"), hd)
			}
			matrix(b("attn_output.weight"), q, e)
		}
		norm(b("ffn_norm.weight"), e)

		dense := !c.moe() || c.Arch == "deepseek2" && i < c.LeadingDense
		if dense {
			ff := int64(c.FF)
			matrix(b("ffn_gate.weight"), e, ff)
			matrix(b("ffn_up.weight"), e, ff)
			matrix(b("ffn_down.weight"), ff, e)
			continue
		}
		x := int64(c.Experts)
		eff := int64(c.ExpertFF)
		if c.Arch == "llama" {
			eff = int64(c.FF)
		}
		ts = append(ts, tensorDef{Name: b("ffn_gate_inp.weight"), Dims: []int64{e, x}, Std: float32(routerStd / math.Sqrt(float64(e)))})
		if c.Arch == "deepseek2" && c.ProbsBias {
			vector(b("exp_probs_b.bias"), x, biasStd)
		}
		matrix(b("ffn_gate_exps.weight"), e, eff, x)
		matrix(b("ffn_up_exps.weight"), e, eff, x)
		matrix(b("ffn_down_exps.weight"), eff, e, x)
		switch {
		case c.Arch == "qwen2moe":
			sff := int64(c.SharedFF)
			vector(b("ffn_gate_inp_shexp.weight"), e, float32(1/math.Sqrt(float64(e))))
			matrix(b("ffn_gate_shexp.weight"), e, sff)
			matrix(b("ffn_up_shexp.weight"), e, sff)
			matrix(b("ffn_down_shexp.weight"), sff, e)
		case c.Arch == "deepseek2" && c.SharedExperts > 0:
			sff := eff * int64(c.SharedExperts)
			matrix(b("ffn_gate_shexp.weight"), e, sff)
			matrix(b("ffn_up_shexp.weight"), e, sff)
			matrix(b("ffn_down_shexp.weight"), sff, e)
		}
	}
	return ts
}

// mlaLayer appends deepseek2's attention tensors of layer i in the layout
// current llama.cpp converts to: q through a low-rank pair (attn_q_a,
// attn_q_a_norm, attn_q_b) when QLoraRank > 0, the joint kv compression
// plus the shared rope key (attn_kv_a_mqa), and attn_kv_b split into the
// per-head absorbed attn_k_b [nope, kv_lora, heads] and attn_v_b
// [kv_lora, v, heads].
func (c *Config) mlaLayer(i int, matrix func(string, ...int64), norm func(string, int64)) {
	b := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
	e, h := int64(c.Embd), int64(c.Heads)
	kvl, rope, nope, v := int64(c.KVLoraRank), int64(c.RopeDim), int64(c.NopeDim), int64(c.VHeadDim)
	if c.QLoraRank > 0 {
		ql := int64(c.QLoraRank)
		norm(b("attn_q_a_norm.weight"), ql)
		norm(b("attn_kv_a_norm.weight"), kvl)
		matrix(b("attn_q_a.weight"), e, ql)
		matrix(b("attn_q_b.weight"), ql, h*(nope+rope))
	} else {
		norm(b("attn_kv_a_norm.weight"), kvl)
		matrix(b("attn_q.weight"), e, h*(nope+rope))
	}
	matrix(b("attn_kv_a_mqa.weight"), e, kvl+rope)
	matrix(b("attn_k_b.weight"), nope, kvl, h)
	matrix(b("attn_v_b.weight"), kvl, v, h)
	matrix(b("attn_output.weight"), h*v, e)
}

// metadata returns the GGUF keys of the model (without the tokenizer and
// the two general.* keys written last), as convert_hf_to_gguf.py names them.
func (c *Config) metadata() []gguf.KV {
	var kvs []gguf.KV
	put := func(k string, v any) { kvs = append(kvs, gguf.KV{Key: k, Value: gguf.MustValue(v)}) }
	a := func(k string) string { return c.Arch + "." + k }
	u := func(n int) uint32 { return uint32(n) }

	put(gguf.KeyArchitecture, c.Arch)
	put("general.name", c.Name)
	put(a("vocab_size"), u(c.Vocab))
	put(a("context_length"), u(c.Ctx))
	put(a("embedding_length"), u(c.Embd))
	put(a("block_count"), u(c.Layers))
	if c.FF > 0 {
		put(a("feed_forward_length"), u(c.FF))
	}
	put(a("attention.head_count"), u(c.Heads))
	put(a("rope.freq_base"), c.RopeBase)
	put(a("attention.layer_norm_rms_epsilon"), c.NormEps)

	if c.Arch == "deepseek2" {
		put(a("attention.head_count_kv"), uint32(1))
		put(a("leading_dense_block_count"), u(c.LeadingDense))
		if c.QLoraRank > 0 {
			put(a("attention.q_lora_rank"), u(c.QLoraRank))
		}
		put(a("attention.kv_lora_rank"), u(c.KVLoraRank))
		put(a("attention.key_length"), u(c.KVLoraRank+c.RopeDim))
		put(a("attention.value_length"), u(c.KVLoraRank))
		put(a("attention.key_length_mla"), u(c.NopeDim+c.RopeDim))
		put(a("attention.value_length_mla"), u(c.VHeadDim))
		put(a("expert_feed_forward_length"), u(c.ExpertFF))
		put(a("expert_count"), u(c.Experts))
		put(a("expert_used_count"), u(c.ExpertsUsed))
		put(a("expert_shared_count"), u(c.SharedExperts))
		if c.ExpertGroups > 0 {
			put(a("expert_group_count"), u(c.ExpertGroups))
			put(a("expert_group_used_count"), u(c.GroupsUsed))
		}
		if c.WeightsScale != 0 {
			put(a("expert_weights_scale"), c.WeightsScale)
		}
		if c.WeightsNorm {
			put(a("expert_weights_norm"), true)
		}
		put(a("expert_gating_func"), u(c.Gating))
		put(a("rope.dimension_count"), u(c.RopeDim))
	} else {
		hd := c.headDim()
		put(a("attention.head_count_kv"), u(c.KVHeads))
		put(a("rope.dimension_count"), u(hd))
		if c.HeadDim != 0 || c.Arch == "qwen3" || c.Arch == "qwen3moe" {
			put(a("attention.key_length"), u(hd))
			put(a("attention.value_length"), u(hd))
		}
		if c.moe() {
			put(a("expert_count"), u(c.Experts))
			put(a("expert_used_count"), u(c.ExpertsUsed))
		}
		if c.Arch == "qwen2moe" || c.Arch == "qwen3moe" {
			put(a("expert_feed_forward_length"), u(c.ExpertFF))
		}
		if c.Arch == "qwen2moe" {
			put(a("expert_shared_feed_forward_length"), u(c.SharedFF))
		}
	}
	if c.YarnFactor > 0 {
		put(a("rope.scaling.type"), "yarn")
		put(a("rope.scaling.factor"), c.YarnFactor)
		put(a("rope.scaling.original_context_length"), u(c.YarnOrigCtx))
		if c.YarnLogMul != 0 {
			put(a("rope.scaling.yarn_log_multiplier"), c.YarnLogMul)
		}
	}
	return kvs
}
