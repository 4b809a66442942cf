package model

import (
	"fmt"
	"math"
)

// deepseek2 (DeepSeek-V2/V3, Kimi-K2): multi-head latent attention with
// normal RoPE on a separate rope part of each head (YaRN-scaled), then a
// dense SwiGLU FFN for the first leading_dense_block_count layers and a
// mixture of experts with shared experts after that.
func init() { register("deepseek2", buildDeepseek2) }

func buildDeepseek2(l *loader, c *Config) ([]layer, error) {
	c.Rope.Style = RopeNormal
	// llama.cpp keeps the file's yarn_log_multiplier divided by 0.1 for
	// this architecture (the convert script multiplied it in).
	c.YarnLogMul /= 0.1
	if c.GatingFunc == 0 { // "none" in old files: softmax
		c.GatingFunc = GatingSoftmax
	}
	if c.GatingFunc != GatingSoftmax && c.GatingFunc != GatingSigmoid {
		return nil, fmt.Errorf("%w: deepseek2 expert_gating_func %d (supported: 1 softmax, 2 sigmoid)", ErrUnsupported, c.GatingFunc)
	}
	// The MLA head sizes: the split k_b/v_b layout names them *_mla; the
	// older kv_b layout's key_length/value_length are them.
	split := c.HeadDimKMLA > 0 && c.HeadDimVMLA > 0
	kHead, vHead := c.HeadDimK, c.HeadDimV
	if split {
		kHead, vHead = c.HeadDimKMLA, c.HeadDimVMLA
	}
	c.RopeHeadDim = c.Rope.Dims
	c.NopeHeadDim = kHead - c.RopeHeadDim
	c.VHeadDimMLA = vHead
	switch {
	case c.KVLoraRank <= 0:
		return nil, fmt.Errorf("model deepseek2: attention.kv_lora_rank %d must be positive", c.KVLoraRank)
	case c.NopeHeadDim < 1 || vHead < 1:
		return nil, fmt.Errorf("model deepseek2: key length %d leaves no room beside the rope dimensions %d (value length %d)",
			kHead, c.RopeHeadDim, vHead)
	case c.Experts > 0 && c.ExpertGroups > 1 &&
		(c.Experts%c.ExpertGroups != 0 || c.GroupsUsed < 1 || c.GroupsUsed > c.ExpertGroups ||
			c.Experts/c.ExpertGroups < 2 || c.GroupsUsed*(c.Experts/c.ExpertGroups) < c.ExpertsUsed):
		return nil, fmt.Errorf("model deepseek2: %d experts in %d groups, %d groups used, cannot route to %d experts",
			c.Experts, c.ExpertGroups, c.GroupsUsed, c.ExpertsUsed)
	}

	// kq_scale as deepseek2.cpp pre-scales it: recover the YaRN attention
	// factor before the rope's own correction, then mscale^2/sqrt(k head).
	r := &c.Rope
	attnFactorOrg := r.AttnFactor * (1 + 0.1*log32(1/r.FreqScale))
	mscale := attnFactorOrg * (1 + 0.1*c.YarnLogMul*log32(1/r.FreqScale))
	c.AttnScale = mscale * mscale / float32(math.Sqrt(float64(kHead)))

	layers := make([]layer, c.Layers)
	nope, rope, kvLora, heads := c.NopeHeadDim, c.RopeHeadDim, c.KVLoraRank, c.Heads
	for i := range layers {
		a := &mla{
			kvA:     l.matrix(blk(i, "attn_kv_a_mqa.weight"), c.Embd, kvLora+rope),
			kvANorm: l.vector(blk(i, "attn_kv_a_norm.weight"), kvLora),
			o:       l.matrix(blk(i, "attn_output.weight"), heads*vHead, c.Embd),
			heads:   heads, nope: nope, rope: rope, kvLora: kvLora, v: vHead,
			ropeP: r, scale: c.AttnScale, eps: c.NormEps,
		}
		if c.QLoraRank > 0 {
			a.qA = l.matrix(blk(i, "attn_q_a.weight"), c.Embd, c.QLoraRank)
			a.qANorm = l.vector(blk(i, "attn_q_a_norm.weight"), c.QLoraRank)
			a.qB = l.matrix(blk(i, "attn_q_b.weight"), c.QLoraRank, heads*kHead)
		} else {
			a.q = l.matrix(blk(i, "attn_q.weight"), c.Embd, heads*kHead)
		}
		if split {
			a.kB = l.perHead(blk(i, "attn_k_b.weight"), nope, kvLora, heads)
			a.vB = l.perHead(blk(i, "attn_v_b.weight"), kvLora, vHead, heads)
		} else {
			a.kT, a.vB = l.splitKVB(blk(i, "attn_kv_b.weight"), kvLora, heads, nope, vHead)
		}
		layers[i] = layer{
			attnNorm: l.vector(blk(i, "attn_norm.weight"), c.Embd),
			attn:     a,
			ffnNorm:  l.vector(blk(i, "ffn_norm.weight"), c.Embd),
		}
		if i < c.LeadingDense || c.Experts == 0 {
			layers[i].ffn = loadDenseFFN(l, i, c.Embd, c.FF)
		} else {
			f := loadMoE(l, c, i, routing{
				experts: c.Experts, used: c.ExpertsUsed, gating: c.GatingFunc,
				bias:   l.vectorOpt(blk(i, "exp_probs_b.bias"), true, c.Experts),
				groups: c.ExpertGroups, groupsUsed: c.GroupsUsed,
				norm: c.WeightsNorm, scale: c.WeightsScale,
			})
			if c.SharedExperts > 0 {
				f.shared = loadSharedExperts(l, i, c.Embd, c.ExpertFF*c.SharedExperts)
			}
			layers[i].ffn = f
		}
		if l.err != nil {
			return nil, l.err
		}
	}
	return layers, nil
}
