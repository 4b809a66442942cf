package synth

import (
	"fmt"
	"sort"
	"strings"
)

// Gating functions of deepseek2 routers (llama.cpp's expert_gating_func).
const (
	GatingSoftmax = 1
	GatingSigmoid = 2
)

// Config describes a synthetic model: its architecture, shape, weight type
// and seed. DefaultConfig gives a tiny model of each architecture; Preset
// gives named real-world shapes. Fields an architecture does not use are
// ignored (Validate says which combinations are wrong).
type Config struct {
	Arch string `json:"arch"` // llama, qwen2, qwen3, qwen2moe, qwen3moe, deepseek2
	Name string `json:"name"` // general.name (default "synthetic-<arch>")

	Layers   int     `json:"layers"`
	Embd     int     `json:"embd"` // hidden width (n_embd)
	FF       int     `json:"ff"`   // dense FFN width; for llama with experts, each expert's width
	Heads    int     `json:"heads"`
	KVHeads  int     `json:"kv_heads"`
	HeadDim  int     `json:"head_dim"` // per-head width of q, k and v (0: Embd/Heads); qwen3/qwen3moe may differ
	Vocab    int     `json:"vocab"`
	Ctx      int     `json:"ctx"` // context_length
	RopeBase float32 `json:"rope_base"`
	NormEps  float32 `json:"norm_eps"`
	Tied     bool    `json:"tied"` // no output.weight: the LM head is token_embd

	// Mixture of experts.
	Experts       int     `json:"experts"`
	ExpertsUsed   int     `json:"experts_used"`
	ExpertFF      int     `json:"expert_ff"`      // width of each routed expert (qwen2moe, qwen3moe, deepseek2)
	SharedExperts int     `json:"shared_experts"` // deepseek2: shared experts (their FFN is SharedExperts*ExpertFF wide)
	SharedFF      int     `json:"shared_ff"`      // qwen2moe: the shared expert's width
	LeadingDense  int     `json:"leading_dense"`  // deepseek2: leading layers with a dense FFN of width FF
	ExpertGroups  int     `json:"expert_groups"`  // deepseek2: group-limited routing (0 or 1: off)
	GroupsUsed    int     `json:"groups_used"`
	Gating        int     `json:"gating"`        // deepseek2: GatingSoftmax or GatingSigmoid
	WeightsScale  float32 `json:"weights_scale"` // deepseek2: routed_scaling_factor (0: unset)
	WeightsNorm   bool    `json:"weights_norm"`  // deepseek2: renormalise the top-k weights
	ProbsBias     bool    `json:"probs_bias"`    // deepseek2: exp_probs_b (sigmoid routers' selection bias)

	// Multi-head latent attention (deepseek2).
	QLoraRank  int `json:"q_lora_rank"` // 0: no q compression (attn_q instead of attn_q_a/attn_q_b)
	KVLoraRank int `json:"kv_lora_rank"`
	RopeDim    int `json:"rope_dim"`   // qk_rope_head_dim (deepseek2); others rotate the whole head
	NopeDim    int `json:"nope_dim"`   // qk_nope_head_dim
	VHeadDim   int `json:"v_head_dim"` // v_head_dim

	// YaRN context extension (0 factor: none).
	YarnFactor  float32 `json:"yarn_factor"`
	YarnOrigCtx int     `json:"yarn_orig_ctx"`
	YarnLogMul  float32 `json:"yarn_log_mul"` // written as rope.scaling.yarn_log_multiplier (0.1*mscale_all_dim)
}

// MaxExperts is llama.cpp's LLAMA_MAX_EXPERTS.
const MaxExperts = 1024

// Architectures lists the architectures synth writes.
func Architectures() []string {
	return []string{"llama", "qwen2", "qwen3", "qwen2moe", "qwen3moe", "deepseek2"}
}

// DefaultConfig returns a tiny model of arch (a few MB in F32, rows of 256
// so every quant type applies), or an error naming the architectures.
func DefaultConfig(arch string) (Config, error) {
	c := Config{
		Arch: arch, Layers: 2, Embd: 256, FF: 512, Heads: 4, KVHeads: 2, Vocab: 512, Ctx: 4096,
		RopeBase: 10000, NormEps: 1e-5,
	}
	switch arch {
	case "llama", "qwen2":
	case "qwen3":
		c.HeadDim, c.NormEps, c.RopeBase = 64, 1e-6, 1e6
	case "qwen2moe":
		c.Experts, c.ExpertsUsed, c.ExpertFF, c.SharedFF = 8, 2, 256, 512
		c.NormEps, c.RopeBase = 1e-6, 1e6
	case "qwen3moe":
		c.HeadDim, c.Experts, c.ExpertsUsed, c.ExpertFF = 64, 8, 2, 256
		c.NormEps, c.RopeBase = 1e-6, 1e6
	case "deepseek2":
		c.KVHeads = 1
		c.Experts, c.ExpertsUsed, c.ExpertFF, c.SharedExperts, c.LeadingDense = 16, 4, 256, 1, 1
		c.ExpertGroups, c.GroupsUsed = 4, 2
		c.Gating, c.WeightsScale, c.WeightsNorm, c.ProbsBias = GatingSigmoid, 2.5, true, true
		c.QLoraRank, c.KVLoraRank, c.RopeDim, c.NopeDim, c.VHeadDim = 256, 256, 32, 64, 64
		c.YarnFactor, c.YarnOrigCtx, c.YarnLogMul = 32, 4096, 0.1
		c.Ctx, c.NormEps = 131072, 1e-6
	default:
		return Config{}, fmt.Errorf("synth: unknown architecture %q (valid: %s)", arch, strings.Join(Architectures(), ", "))
	}
	return c, nil
}

// presets are real models' shapes (or their structure at a reduced size).
var presets = map[string]struct {
	help string
	cfg  Config
}{
	"llama-7b": {"Llama-2-7B's shape: 32 layers, 4096 wide, FFN 11008, 32 heads, vocab 32000 (3.8 GB at Q4_K_M)", Config{
		Arch: "llama", Name: "synthetic-llama-7b", Layers: 32, Embd: 4096, FF: 11008, Heads: 32, KVHeads: 32,
		Vocab: 32000, Ctx: 4096, RopeBase: 10000, NormEps: 1e-5,
	}},
	"mixtral-mini": {"Mixtral's structure, small: llama MoE, 8 experts top-2, GQA 4:1, 8 layers, 512 wide (130 MB at Q4_K_M)", Config{
		Arch: "llama", Name: "synthetic-mixtral-mini", Layers: 8, Embd: 512, FF: 1792, Heads: 8, KVHeads: 2,
		Vocab: 32000, Ctx: 32768, RopeBase: 1e6, NormEps: 1e-5, Experts: 8, ExpertsUsed: 2,
	}},
	"qwen3-30b-a3b": {"Qwen3-30B-A3B's shape: qwen3moe, 48 layers, 2048 wide, 128 experts top-8 of width 768, vocab 151936 (18 GB at Q4_K_M)", Config{
		Arch: "qwen3moe", Name: "synthetic-qwen3-30b-a3b", Layers: 48, Embd: 2048, FF: 6144, Heads: 32, KVHeads: 4,
		HeadDim: 128, Vocab: 151936, Ctx: 40960, RopeBase: 1e6, NormEps: 1e-6,
		Experts: 128, ExpertsUsed: 8, ExpertFF: 768,
	}},
	"kimi-k2-mini": {"Kimi-K2's structure, reduced: deepseek2 MLA with q_lora, 384 experts top-8, 1 shared expert, sigmoid routing with bias, 1 leading dense layer, YaRN; 16 layers, 1024 wide (3 GB at Q4_K_M)", Config{
		Arch: "deepseek2", Name: "synthetic-kimi-k2-mini", Layers: 16, Embd: 1024, FF: 2560, Heads: 16, KVHeads: 1,
		Vocab: 163840, Ctx: 131072, RopeBase: 50000, NormEps: 1e-6,
		Experts: 384, ExpertsUsed: 8, ExpertFF: 256, SharedExperts: 1, LeadingDense: 1,
		ExpertGroups: 1, GroupsUsed: 1, Gating: GatingSigmoid, WeightsScale: 2.827, WeightsNorm: true, ProbsBias: true,
		QLoraRank: 512, KVLoraRank: 512, RopeDim: 64, NopeDim: 128, VHeadDim: 128,
		YarnFactor: 32, YarnOrigCtx: 4096, YarnLogMul: 0.1,
	}},
}

// Preset returns the named preset's shape.
func Preset(name string) (Config, error) {
	p, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("synth: unknown preset %q (valid: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return p.cfg, nil
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var out []string
	for k := range presets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PresetHelp returns one line describing a preset.
func PresetHelp(name string) string { return presets[name].help }

// headDim returns the per-head width of q/k/v for the GQA architectures.
func (c *Config) headDim() int {
	if c.HeadDim > 0 {
		return c.HeadDim
	}
	if c.Heads > 0 {
		return c.Embd / c.Heads
	}
	return 0
}

func (c *Config) moe() bool {
	switch c.Arch {
	case "qwen2moe", "qwen3moe", "deepseek2":
		return true
	}
	return c.Experts > 0
}

// Validate checks the shape against what llama.cpp (and the engine) accept
// for the architecture; each error names the constraint.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("synth: %s: %s", c.Arch, fmt.Sprintf(format, a...))
	}
	if _, err := DefaultConfig(c.Arch); err != nil {
		return err
	}
	switch {
	case c.Layers <= 0 || c.Layers > 512:
		return bad("--layers %d must be between 1 and 512 (llama.cpp's LLAMA_MAX_LAYERS)", c.Layers)
	case c.Embd <= 0 || c.Embd%32 != 0:
		return bad("--dim %d must be a positive multiple of 32 (the smallest quant block)", c.Embd)
	case c.Heads <= 0:
		return bad("--heads %d must be positive", c.Heads)
	case c.Vocab < MinVocab:
		return bad("--vocab %d must be at least %d (3 special tokens and 256 byte tokens)", c.Vocab, MinVocab)
	case c.Ctx <= 0:
		return bad("--ctx %d must be positive", c.Ctx)
	case c.NormEps <= 0:
		return bad("the RMS norm epsilon %g must be positive", c.NormEps)
	case c.RopeBase <= 0:
		return bad("--rope-base %g must be positive", c.RopeBase)
	}
	if c.Arch != "deepseek2" {
		hd := c.headDim()
		switch {
		case c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
			return bad("--heads %d must be a multiple of --kv-heads %d", c.Heads, c.KVHeads)
		case hd <= 0 || hd%2 != 0:
			return bad("the head width %d must be even (RoPE rotates pairs); set --head-dim or make --dim a multiple of --heads", hd)
		case c.HeadDim == 0 && c.Embd%c.Heads != 0:
			return bad("--dim %d must be a multiple of --heads %d (or set --head-dim)", c.Embd, c.Heads)
		case (c.Arch == "qwen2" || c.Arch == "qwen2moe") && c.HeadDim != 0 && c.HeadDim*c.Heads != c.Embd:
			return bad("llama.cpp requires --heads × --head-dim = --dim for %s (%d × %d ≠ %d)", c.Arch, c.Heads, c.HeadDim, c.Embd)
		}
	}
	if (c.Arch == "qwen2" || c.Arch == "qwen3") && c.Experts > 0 {
		return bad("--experts needs the MoE architecture (%smoe)", c.Arch)
	}
	if c.moe() {
		switch {
		case c.Experts < 2 || c.Experts > MaxExperts:
			return bad("--experts %d must be between 2 and %d (llama.cpp's LLAMA_MAX_EXPERTS)", c.Experts, MaxExperts)
		case c.ExpertsUsed <= 0 || c.ExpertsUsed > c.Experts:
			return bad("--experts-used %d must be between 1 and --experts %d", c.ExpertsUsed, c.Experts)
		}
	}
	// FF is the width of dense FFNs (and of llama's experts); qwen2moe and
	// qwen3moe have none, deepseek2 only in its leading dense layers.
	var needFF bool
	switch c.Arch {
	case "qwen2moe", "qwen3moe":
	case "deepseek2":
		needFF = c.LeadingDense > 0
	default:
		needFF = true
	}
	if needFF && (c.FF <= 0 || c.FF%32 != 0) {
		return bad("--ff %d must be a positive multiple of 32", c.FF)
	}
	if c.Arch == "qwen2moe" || c.Arch == "qwen3moe" || c.Arch == "deepseek2" {
		if c.ExpertFF <= 0 || c.ExpertFF%32 != 0 {
			return bad("--expert-ff %d must be a positive multiple of 32", c.ExpertFF)
		}
	}
	if c.Arch == "qwen2moe" && (c.SharedFF <= 0 || c.SharedFF%32 != 0) {
		return bad("--shared-ff %d must be a positive multiple of 32", c.SharedFF)
	}
	if c.YarnFactor < 0 || c.YarnFactor > 0 && c.YarnOrigCtx <= 0 {
		return bad("YaRN factor %g needs a positive original context length (got %d)", c.YarnFactor, c.YarnOrigCtx)
	}
	if c.Arch == "deepseek2" {
		return c.validateMLA(bad)
	}
	return nil
}

func (c *Config) validateMLA(bad func(string, ...any) error) error {
	switch {
	case c.KVLoraRank <= 0 || c.KVLoraRank%32 != 0:
		return bad("--kv-lora %d must be a positive multiple of 32", c.KVLoraRank)
	case c.QLoraRank < 0 || c.QLoraRank%32 != 0:
		return bad("--q-lora %d must be 0 (no q compression) or a positive multiple of 32", c.QLoraRank)
	case c.RopeDim <= 0 || c.RopeDim%2 != 0:
		return bad("--rope-dim %d must be even and positive", c.RopeDim)
	case c.NopeDim <= 0:
		return bad("--nope-dim %d must be positive", c.NopeDim)
	case c.VHeadDim <= 0:
		return bad("--v-dim %d must be positive", c.VHeadDim)
	case (c.Heads*c.VHeadDim)%32 != 0:
		return bad("--heads × --v-dim = %d must be a multiple of 32 (attn_output rows)", c.Heads*c.VHeadDim)
	case c.LeadingDense < 0 || c.LeadingDense >= c.Layers:
		return bad("--leading-dense %d must be between 0 and --layers-1 = %d (deepseek2 needs a MoE layer)", c.LeadingDense, c.Layers-1)
	case c.SharedExperts < 0:
		return bad("--shared-experts %d must not be negative", c.SharedExperts)
	case c.QLoraRank > 0 && (c.Layers == 26 || c.Layers == 27):
		return bad("llama.cpp reads a deepseek2 model with %d layers as a Lite model without q_lora; pick another --layers or --q-lora 0", c.Layers)
	case c.Gating != GatingSoftmax && c.Gating != GatingSigmoid:
		return bad("gating function %d must be %d (softmax) or %d (sigmoid)", c.Gating, GatingSoftmax, GatingSigmoid)
	}
	if c.ExpertGroups > 1 {
		switch {
		case c.ExpertGroups >= c.Experts || c.Experts%c.ExpertGroups != 0:
			return bad("--experts %d must be a multiple of --groups %d, and larger", c.Experts, c.ExpertGroups)
		case c.GroupsUsed <= 0 || c.GroupsUsed >= c.ExpertGroups:
			return bad("--groups-used %d must be between 1 and --groups-1 = %d", c.GroupsUsed, c.ExpertGroups-1)
		case c.ExpertsUsed > c.GroupsUsed*(c.Experts/c.ExpertGroups):
			return bad("--experts-used %d exceeds the %d experts of the %d groups used", c.ExpertsUsed, c.GroupsUsed*(c.Experts/c.ExpertGroups), c.GroupsUsed)
		}
	}
	return nil
}
