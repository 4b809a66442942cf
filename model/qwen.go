package model

// qwen2: llama's block with q/k/v biases and neox RoPE.
// qwen3: llama's block with per-head q/k RMS norm and neox RoPE.
// qwen2moe: qwen2 with MoE layers (softmax top-k, weights not
// renormalised) plus a shared expert gated by sigmoid(ffn_gate_inp_shexp . x).
// qwen3moe: qwen3 with MoE layers (softmax top-k, renormalised).
func init() {
	register("qwen2", func(l *loader, c *Config) ([]layer, error) {
		c.Rope.Style = RopeNeox
		return buildGQALayers(l, c, gqaOptions{biases: true})
	})
	register("qwen3", func(l *loader, c *Config) ([]layer, error) {
		c.Rope.Style = RopeNeox
		return buildGQALayers(l, c, gqaOptions{qkNorm: true})
	})
	register("qwen2moe", func(l *loader, c *Config) ([]layer, error) {
		c.Rope.Style = RopeNeox
		qwenExpertFF(l, c)
		if !l.f.Has("qwen2moe.expert_shared_feed_forward_length") {
			c.SharedFF = c.FF
		}
		return buildGQALayers(l, c, gqaOptions{biases: true, sharedExpert: true})
	})
	register("qwen3moe", func(l *loader, c *Config) ([]layer, error) {
		c.Rope.Style = RopeNeox
		qwenExpertFF(l, c)
		return buildGQALayers(l, c, gqaOptions{qkNorm: true, moeNorm: true})
	})
}

// qwenExpertFF applies llama.cpp's default expert width for the qwen MoE
// files: feed_forward_length / expert_used_count when the file does not
// give expert_feed_forward_length.
func qwenExpertFF(l *loader, c *Config) {
	if !l.f.Has(c.Arch+".expert_feed_forward_length") && c.ExpertsUsed > 0 {
		c.ExpertFF = c.FF / c.ExpertsUsed
	}
}
