package model

import "fmt"

// qwen2: llama's block with q/k/v biases and neox RoPE.
// qwen3: llama's block with per-head q/k RMS norm and neox RoPE.
func init() {
	register("qwen2", func(l *loader, c *Config) ([]layer, error) {
		c.Rope.Style = RopeNeox
		return buildGQALayers(l, c, gqaOptions{biases: true})
	})
	register("qwen3", func(l *loader, c *Config) ([]layer, error) {
		c.Rope.Style = RopeNeox
		return buildGQALayers(l, c, gqaOptions{qkNorm: true})
	})
}

func errMoE(c *Config) error {
	return fmt.Errorf("%w: %s with %d experts (mixture-of-experts layers are not built yet)", ErrUnsupported, c.Arch, c.Experts)
}
