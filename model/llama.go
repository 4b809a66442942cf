package model

// llama: RMSNorm, GQA with normal (adjacent-pair) RoPE, SwiGLU FFN; the
// Mixtral-style MoE variant has ffn_gate_inp and ffn_*_exps instead.
func init() { register("llama", buildLlama) }

func buildLlama(l *loader, c *Config) ([]layer, error) {
	c.Rope.Style = RopeNormal
	return buildGQALayers(l, c, gqaOptions{moeNorm: true})
}

// gqaOptions are the differences between the GQA architectures.
type gqaOptions struct {
	biases bool // q/k/v biases (qwen2)
	qkNorm bool // per-head q and k RMS norm (qwen3)

	// MoE layers (when the file has experts).
	moeNorm      bool // renormalise the top-k weights (Mixtral, qwen3moe)
	sharedExpert bool // a sigmoid-gated shared expert (qwen2moe)
}

// buildGQALayers reads the layers shared by llama, qwen2 and qwen3.
func buildGQALayers(l *loader, c *Config, o gqaOptions) ([]layer, error) {
	layers := make([]layer, c.Layers)
	qw, kw, vw := c.Heads*c.HeadDimK, c.KVHeads*c.HeadDimK, c.KVHeads*c.HeadDimV
	for i := range layers {
		a := &gqa{
			q:     l.matrix(blk(i, "attn_q.weight"), c.Embd, qw),
			k:     l.matrix(blk(i, "attn_k.weight"), c.Embd, kw),
			v:     l.matrix(blk(i, "attn_v.weight"), c.Embd, vw),
			o:     l.matrix(blk(i, "attn_output.weight"), qw, c.Embd),
			oBias: l.vectorOpt(blk(i, "attn_output.bias"), true, c.Embd),
			heads: c.Heads, kvHeads: c.KVHeads, headDim: c.HeadDimK, vHeadDim: c.HeadDimV,
			rope: &c.Rope, scale: c.AttnScale, eps: c.NormEps,
		}
		if o.biases {
			a.qBias = l.vector(blk(i, "attn_q.bias"), qw)
			a.kBias = l.vector(blk(i, "attn_k.bias"), kw)
			a.vBias = l.vector(blk(i, "attn_v.bias"), vw)
		}
		if o.qkNorm {
			a.qNorm = l.vector(blk(i, "attn_q_norm.weight"), c.HeadDimK)
			a.kNorm = l.vector(blk(i, "attn_k_norm.weight"), c.HeadDimK)
		}
		layers[i] = layer{
			attnNorm: l.vector(blk(i, "attn_norm.weight"), c.Embd),
			attn:     a,
			ffnNorm:  l.vector(blk(i, "ffn_norm.weight"), c.Embd),
		}
		layers[i].ffn = loadFFN(l, c, i, o)
		if l.err != nil {
			return nil, l.err
		}
	}
	return layers, nil
}

// loadFFN reads layer i's FFN: dense, or a mixture of experts with
// softmax gating over the top ExpertsUsed experts when the file has
// experts.
func loadFFN(l *loader, c *Config, i int, o gqaOptions) feedForward {
	if c.Experts == 0 {
		return loadDenseFFN(l, i, c.Embd, c.FF)
	}
	f := loadMoE(l, c, i, routing{
		experts: c.Experts, used: c.ExpertsUsed, gating: GatingSoftmax, norm: o.moeNorm,
	})
	if o.sharedExpert {
		f.shared = loadSharedExperts(l, i, c.Embd, c.SharedFF)
		f.sharedGate = l.matrix(blk(i, "ffn_gate_inp_shexp.weight"), c.Embd, 1)
	}
	return f
}
