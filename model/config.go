package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
)

// ErrUnsupported is wrapped by errors about models this build cannot run.
var ErrUnsupported = errors.New("model: unsupported")

// RopeStyle says which dimensions RoPE rotates together.
type RopeStyle int

// RoPE styles (ggml's rope modes 0 and 2).
const (
	RopeNormal RopeStyle = iota // adjacent pairs (x[2i], x[2i+1]): llama, deepseek2
	RopeNeox                    // halves (x[i], x[i+n/2]): qwen2, qwen3
)

// Rope holds the rotary embedding parameters, resolved as llama.cpp's
// context resolves them (YaRN attention factor included).
type Rope struct {
	Style      RopeStyle
	Dims       int     // rotated dimensions per head
	FreqBase   float32 // theta base
	FreqScale  float32 // 1 / scaling factor (1 when unscaled)
	ExtFactor  float32 // YaRN extrapolation mix (0 off, 1 for YaRN)
	AttnFactor float32 // magnitude scale applied to cos/sin
	BetaFast   float32
	BetaSlow   float32
	OrigCtx    int // context the model was trained with (YaRN)
}

// Config is a model's hyperparameters, read from GGUF metadata.
type Config struct {
	Arch       string
	Layers     int
	Embd       int // hidden width
	Heads      int
	KVHeads    int
	HeadDimK   int
	HeadDimV   int
	FF         int // dense FFN width
	Vocab      int
	CtxTrain   int
	NormEps    float32
	Rope       Rope
	AttnScale  float32 // kq scale; 1/sqrt(HeadDimK) unless the model says otherwise
	TiedOutput bool    // no output.weight: the LM head is token_embd

	// Mixture of experts (zero for dense models).
	Experts       int
	ExpertsUsed   int
	ExpertFF      int
	SharedExperts int
	SharedFF      int
	LeadingDense  int // leading layers with a dense FFN (deepseek2)
	GatingFunc    GatingFunc
	WeightsNorm   bool    // renormalise the selected experts' weights
	WeightsScale  float32 // routed_scaling_factor (1 if unset)
	ExpertGroups  int
	GroupsUsed    int

	// Multi-head latent attention (deepseek2).
	QLoraRank   int
	KVLoraRank  int
	RopeHeadDim int // qk_rope_head_dim
	NopeHeadDim int // qk_nope_head_dim
	VHeadDimMLA int
	// HeadDimKMLA and HeadDimVMLA are attention.key_length_mla and
	// value_length_mla: a head's K and V width before absorption
	// (nope+rope and v_head_dim). Set only by files in the split
	// attn_k_b/attn_v_b layout; zero for the older attn_kv_b layout, whose
	// key_length/value_length are these widths.
	HeadDimKMLA int
	HeadDimVMLA int
	// YarnLogMul is rope.scaling.yarn_log_multiplier as llama.cpp holds it
	// (for deepseek2 the file's value divided by 0.1).
	YarnLogMul float32
}

// GatingFunc is how router logits become expert probabilities.
type GatingFunc int

// Gating functions (llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_*).
const (
	GatingSoftmax GatingFunc = 1
	GatingSigmoid GatingFunc = 2
)

// meta reads architecture-prefixed keys with defaults and remembers the
// first error, so a config reads as a list of fields.
type meta struct {
	f    *gguf.File
	arch string
	err  error
}

func (m *meta) key(k string) string { return m.arch + "." + k }

func (m *meta) int(k string, def int) int {
	n, err := m.f.Int(m.key(k))
	if errors.Is(err, gguf.ErrKeyNotFound) {
		return def
	}
	if err != nil {
		if a, aerr := m.f.Ints(m.key(k)); aerr == nil && len(a) > 0 {
			return int(a[0]) // per-layer arrays: every layer is equal in the models we run
		}
		m.fail(err)
		return def
	}
	if n < 0 || n > math.MaxInt32 {
		m.fail(fmt.Errorf("%s = %d is out of range", m.key(k), n))
	}
	return int(n)
}

func (m *meta) required(k string) int {
	if !m.f.Has(m.key(k)) {
		m.fail(fmt.Errorf("missing metadata key %s", m.key(k)))
		return 0
	}
	return m.int(k, 0)
}

func (m *meta) float(k string, def float32) float32 {
	v, err := m.f.Float(m.key(k))
	if errors.Is(err, gguf.ErrKeyNotFound) {
		return def
	}
	if err != nil {
		m.fail(err)
		return def
	}
	return float32(v)
}

func (m *meta) bool(k string, def bool) bool {
	v, err := m.f.Bool(m.key(k))
	if errors.Is(err, gguf.ErrKeyNotFound) {
		return def
	}
	if err != nil {
		m.fail(err)
	}
	return v
}

func (m *meta) str(k string, def string) string {
	v, err := m.f.String(m.key(k))
	if errors.Is(err, gguf.ErrKeyNotFound) {
		return def
	}
	if err != nil {
		m.fail(err)
	}
	return v
}

func (m *meta) fail(err error) {
	if m.err == nil {
		m.err = err
	}
}

// ReadConfig reads the hyperparameters common to the transformer
// architectures from f; architecture files adjust what is theirs.
func ReadConfig(f *gguf.File) (Config, error) {
	arch, err := f.Architecture()
	if err != nil {
		return Config{}, err
	}
	m := &meta{f: f, arch: arch}
	c := Config{Arch: arch}
	c.Layers = m.required("block_count")
	c.Embd = m.required("embedding_length")
	c.Heads = m.required("attention.head_count")
	c.KVHeads = m.int("attention.head_count_kv", c.Heads)
	if c.Heads > 0 {
		c.HeadDimK = m.int("attention.key_length", c.Embd/c.Heads)
		c.HeadDimV = m.int("attention.value_length", c.Embd/c.Heads)
	}
	c.FF = m.int("feed_forward_length", 0)
	c.CtxTrain = m.int("context_length", 2048)
	c.NormEps = m.float("attention.layer_norm_rms_epsilon", 1e-5)
	c.Vocab = m.int("vocab_size", 0)
	if c.Vocab == 0 {
		if toks, err := f.Array("tokenizer.ggml.tokens"); err == nil {
			c.Vocab = toks.Len()
		}
	}
	c.Experts = m.int("expert_count", 0)
	c.ExpertsUsed = m.int("expert_used_count", 0)
	c.ExpertFF = m.int("expert_feed_forward_length", c.FF)
	c.SharedExperts = m.int("expert_shared_count", 0)
	c.SharedFF = m.int("expert_shared_feed_forward_length", c.ExpertFF)
	c.LeadingDense = m.int("leading_dense_block_count", 0)
	c.GatingFunc = GatingFunc(m.int("expert_gating_func", int(GatingSoftmax)))
	c.WeightsNorm = m.bool("expert_weights_norm", false)
	c.WeightsScale = m.float("expert_weights_scale", 1)
	c.ExpertGroups = m.int("expert_group_count", 0)
	c.GroupsUsed = m.int("expert_group_used_count", 0)
	c.QLoraRank = m.int("attention.q_lora_rank", 0)
	c.KVLoraRank = m.int("attention.kv_lora_rank", 0)
	c.HeadDimKMLA = m.int("attention.key_length_mla", 0)
	c.HeadDimVMLA = m.int("attention.value_length_mla", 0)

	r := &c.Rope
	r.Dims = m.int("rope.dimension_count", c.HeadDimK)
	r.FreqBase = m.float("rope.freq_base", 10000)
	scale := m.float("rope.scaling.factor", 0)
	if scale == 0 {
		scale = m.float("rope.scale_linear", 0)
	}
	r.FreqScale = 1
	if scale != 0 {
		r.FreqScale = 1 / scale
	}
	r.OrigCtx = m.int("rope.scaling.original_context_length", c.CtxTrain)
	r.BetaFast = m.float("rope.scaling.yarn_beta_fast", 32)
	r.BetaSlow = m.float("rope.scaling.yarn_beta_slow", 1)
	r.AttnFactor = 1
	switch st := m.str("rope.scaling.type", "linear"); st {
	case "none":
		r.FreqScale = 1
	case "linear":
	case "yarn":
		r.ExtFactor = m.float("rope.scaling.yarn_ext_factor", 1)
		logMul := m.float("rope.scaling.yarn_log_multiplier", 0)
		r.AttnFactor = yarnAttnFactor(arch, 1/r.FreqScale, logMul)
		c.YarnLogMul = logMul
	default:
		m.fail(fmt.Errorf("%w: rope scaling type %q (supported: none, linear, yarn)", ErrUnsupported, st))
	}
	r.AttnFactor *= m.float("rope.scaling.attn_factor", 1)
	if m.err != nil {
		return c, fmt.Errorf("model %s: %w", arch, m.err)
	}
	c.AttnScale = 1 / float32(math.Sqrt(float64(c.HeadDimK)))
	return c, nil
}

// yarnAttnFactor is llama.cpp's resolved yarn_attn_factor (llama-context.cpp):
// the mscale ratio, divided by the 1+0.1*ln(factor) that ggml's rope
// multiplies back in.
func yarnAttnFactor(arch string, factor, logMul float32) float32 {
	mscale := func(scale, m float32) float32 {
		if scale <= 1 {
			return 1
		}
		return 0.1*m*log32(scale) + 1
	}
	var af float32
	if logMul != 0 {
		ms := float32(1)
		if arch == "deepseek2" && logMul != 1 {
			ms = logMul
		}
		af = mscale(factor, ms) / mscale(factor, logMul)
	} else {
		af = mscale(factor, 1)
	}
	return af * (1 / (1 + 0.1*log32(factor)))
}

func log32(x float32) float32 { return ggmlfp.Logf(x) } // glibc logf, as llama.cpp calls

// Validate checks the values a forward pass relies on.
func (c *Config) Validate() error {
	switch {
	case c.Layers <= 0 || c.Embd <= 0 || c.Heads <= 0 || c.Vocab <= 0:
		return fmt.Errorf("model %s: block_count %d, embedding_length %d, head_count %d, vocab %d must all be positive",
			c.Arch, c.Layers, c.Embd, c.Heads, c.Vocab)
	case c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("model %s: head_count %d is not a multiple of head_count_kv %d", c.Arch, c.Heads, c.KVHeads)
	case c.Rope.Dims <= 0 || c.Rope.Dims%2 != 0:
		return fmt.Errorf("model %s: rope dimension count %d must be even and positive", c.Arch, c.Rope.Dims)
	case c.Experts > 0 && (c.ExpertsUsed <= 0 || c.ExpertsUsed > c.Experts):
		return fmt.Errorf("model %s: expert_used_count %d with %d experts", c.Arch, c.ExpertsUsed, c.Experts)
	}
	return nil
}
