package quantize

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/inference-x/inference-x/gguf"
)

// ModelInfo holds the hyperparameters llama.cpp's type choice looks at.
type ModelInfo struct {
	Arch    string
	Layers  int // block_count (llama.cpp's n_layer_all)
	Heads   int // attention heads of layer 0
	KVHeads int // KV heads of layer 0
	Experts int // expert_count (0 for dense models)
}

// ModelInfoFromFile reads the hyperparameters of f that the type choice
// needs, as llama.cpp's loader reads them.
func ModelInfoFromFile(f *gguf.File) (ModelInfo, error) {
	arch, err := f.Architecture()
	if err != nil {
		return ModelInfo{}, err
	}
	m := ModelInfo{Arch: arch}
	first := func(key string, def int) (int, error) {
		if !f.Has(key) {
			return def, nil
		}
		if n, err := f.Int(key); err == nil {
			return int(n), nil
		}
		a, err := f.Ints(key)
		if err != nil {
			return 0, err
		}
		if len(a) == 0 {
			return def, nil
		}
		return int(a[0]), nil
	}
	if m.Layers, err = first(arch+".block_count", 0); err != nil {
		return m, err
	}
	if m.Layers <= 0 {
		return m, fmt.Errorf("quantize: %s.block_count missing or not positive", arch)
	}
	if m.Heads, err = first(arch+".attention.head_count", 0); err != nil {
		return m, err
	}
	if m.KVHeads, err = first(arch+".attention.head_count_kv", m.Heads); err != nil {
		return m, err
	}
	if m.Experts, err = first(arch+".expert_count", 0); err != nil {
		return m, err
	}
	return m, nil
}

// gqa is llama_hparams::n_gqa for layer 0.
func (m ModelInfo) gqa() int {
	if m.KVHeads == 0 {
		return 0
	}
	return m.Heads / m.KVHeads
}

// is70B reports whether llama.cpp's loader types the model LLM_TYPE_70B,
// the one model type the quantizer looks at (src/models/*.cpp).
func (m ModelInfo) is70B() bool {
	switch m.Arch {
	case "llama":
		return m.Experts != 8 && m.Layers == 80 && m.Heads != m.KVHeads
	case "qwen2", "deci", "olmo":
		return m.Layers == 80
	case "jais2":
		return m.Layers == 68
	}
	return false
}

// TensorInfo is a tensor as the planner sees it.
type TensorInfo struct {
	Name string
	Type gguf.Type // its type in the source
	Dims []int64   // ggml order: Dims[0] is the row length
}

// Choice is the planned type of one tensor.
type Choice struct {
	Name string
	From gguf.Type
	To   gguf.Type
	// Quantizable is false for tensors llama.cpp never converts (norms,
	// 1-D tensors, ffn_gate_inp, ...): To == From for them.
	Quantizable bool
	// NeedsImatrix is true when llama.cpp refuses To for this tensor
	// without an importance matrix.
	NeedsImatrix bool
	// Fallback explains a type forced by the row length ("" if none).
	Fallback string
}

// Plan is the type choice for every tensor of a model.
type Plan struct {
	Target  Target
	Choices []Choice // in the order of the tensors given to NewPlan
	// NeedsImatrix is true when some tensor needs an importance matrix.
	NeedsImatrix bool
}

// ErrNoFallback is wrapped when a tensor's rows fit no type llama.cpp
// would fall back to.
var ErrNoFallback = errors.New("quantize: no fallback type for this row length")

// NewPlan chooses each tensor's type as llama.cpp's llama_tensor_get_type
// does for target. The counters some presets use (the i-th attn_v, the
// i-th ffn_down) run in llama.cpp's tensor order — by layer, then by name —
// whatever the order of tensors; Choices follows the order of tensors.
// hasImatrix changes a few choices, as it does in llama.cpp.
func NewPlan(info ModelInfo, target Target, hasImatrix bool, tensors []TensorInfo) (Plan, error) {
	if info.Layers <= 0 {
		return Plan{}, fmt.Errorf("quantize: model has %d layers", info.Layers)
	}
	p := &planner{info: info, target: target, hasImatrix: hasImatrix, tied: true}
	for _, t := range tensors {
		c := categorize(t.Name)
		if isAttnV(c) {
			p.nAttnV++
		}
		if c == catOutput {
			p.tied = false
		}
	}
	plan := Plan{Target: target, Choices: make([]Choice, len(tensors))}
	for _, i := range LlamaOrder(tensors) {
		t := tensors[i]
		ch := Choice{Name: t.Name, From: t.Type, To: t.Type, Quantizable: allowsQuantization(t)}
		if ch.Quantizable {
			to, fb, err := p.tensorType(t)
			if err != nil {
				return Plan{}, err
			}
			ch.To, ch.Fallback = to, fb
			ch.NeedsImatrix = requiresImatrix(t.Name, to, target.FileType)
		}
		plan.NeedsImatrix = plan.NeedsImatrix || ch.NeedsImatrix
		plan.Choices[i] = ch
	}
	return plan, nil
}

// LlamaOrder returns the indices of tensors in llama.cpp's order (its
// weights_map comparator): tensors outside blocks first, then by block
// number, each group sorted by name. llama-quantize writes its output in
// this order.
func LlamaOrder(tensors []TensorInfo) []int {
	idx := make([]int, len(tensors))
	layer := make([]int, len(tensors))
	for i, t := range tensors {
		idx[i] = i
		layer[i] = -1
		if n, ok := blockNumber(t.Name); ok {
			layer[i] = n
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ia, ib := idx[a], idx[b]
		if layer[ia] != layer[ib] {
			return layer[ia] < layer[ib]
		}
		return tensors[ia].Name < tensors[ib].Name
	})
	return idx
}

// blockNumber parses the N of "blk.N." as llama.cpp's sscanf("blk.%d.")
// does (an optional sign and at least one digit after "blk.").
func blockNumber(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	end := 0
	if end < len(rest) && (rest[0] == '-' || rest[0] == '+') {
		end++
	}
	digits := end
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	if end == digits {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0, false
	}
	return n, true
}

// category is llama-quant.cpp's tensor_category: broad roles by name.
type category int

const (
	catOther category = iota
	catTokenEmbd
	catAttnQ
	catAttnV
	catAttnK
	catAttnQKV
	catAttnKVB
	catAttnOutput
	catFFNUp
	catFFNGate
	catFFNDown
	catOutput
)

func categorize(name string) category {
	switch {
	case name == "output.weight":
		return catOutput
	case isTokenEmbd(name):
		return catTokenEmbd
	case strings.Contains(name, "attn_qkv.weight"):
		return catAttnQKV
	case strings.Contains(name, "attn_kv_b.weight"):
		return catAttnKVB
	case strings.Contains(name, "attn_v.weight"):
		return catAttnV
	case strings.Contains(name, "attn_k.weight"):
		return catAttnK
	case strings.Contains(name, "attn_q.weight"):
		return catAttnQ
	case strings.Contains(name, "attn_output.weight"):
		return catAttnOutput
	case strings.Contains(name, "ffn_up"):
		return catFFNUp
	case strings.Contains(name, "ffn_gate"):
		return catFFNGate
	case strings.Contains(name, "ffn_down"):
		return catFFNDown
	}
	return catOther
}

func isTokenEmbd(name string) bool {
	return name == "token_embd.weight" || name == "per_layer_token_embd.weight"
}

// isAttnV: the attention-value-like tensors, more sensitive to quantization.
func isAttnV(c category) bool { return c == catAttnV || c == catAttnQKV || c == catAttnKVB }

// nDims is ggml_n_dims: trailing dimensions of 1 do not count.
func nDims(dims []int64) int {
	for i := len(dims) - 1; i >= 1; i-- {
		if dims[i] > 1 {
			return i + 1
		}
	}
	return 1
}

// neverQuantized are name fragments llama.cpp leaves in their type
// (tensor_allows_quantization).
var neverQuantized = []string{
	"_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
	"per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
	"indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
	"time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
	"time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
	"time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
	"time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
	"sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
	"mm.a.code_embd",
}

// allowsQuantization is tensor_allows_quantization: matrices (2-D and 3-D)
// whose name ends in "weight", except norms, routers and a list of small
// or special tensors.
func allowsQuantization(t TensorInfo) bool {
	if nDims(t.Dims) < 2 || !strings.HasSuffix(t.Name, "weight") {
		return false
	}
	for _, s := range neverQuantized {
		if strings.Contains(t.Name, s) {
			return false
		}
	}
	// position embeddings and token types (BERT): LLM_TN gives these names
	return t.Name != "position_embd.weight" && t.Name != "token_types.weight"
}

// requiresImatrix is tensor_requires_imatrix.
func requiresImatrix(name string, t gguf.Type, ft FileType) bool {
	if isTokenEmbd(name) || name == "output.weight" {
		return false
	}
	switch t {
	case gguf.TypeIQ3_XXS, gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S, gguf.TypeIQ1_M, gguf.TypeIQ1_S:
		return true
	case gguf.TypeQ2_K:
		return ft == FileTypeQ2_K_S
	}
	return false
}

// planner carries llama.cpp's quantize_state_impl counters.
type planner struct {
	info       ModelInfo
	target     Target
	hasImatrix bool
	tied       bool // no output.weight: token_embd doubles as the LM head

	nAttnV, iAttnV             int
	iFFNDown, iFFNGate, iFFNUp int
}

// tensorType is llama_tensor_get_type for a quantizable tensor.
func (p *planner) tensorType(t TensorInfo) (gguf.Type, string, error) {
	newType := p.target.Base
	if !newType.Traits().Quantized {
		return newType, "", nil
	}
	if !p.target.Pure {
		var err error
		if newType, err = p.mixedType(t, newType); err != nil {
			return 0, "", err
		}
	}
	return fallback(t, newType)
}

// fallback is tensor_type_fallback: a type whose block does not divide the
// row length is replaced by one that does, F16 as the last resort.
func fallback(t TensorInfo, want gguf.Type) (gguf.Type, string, error) {
	ncols := t.Dims[0]
	bs := int64(want.BlockSize())
	if ncols%bs == 0 {
		return want, "", nil
	}
	got := want
	switch want {
	case gguf.TypeIQ1_S, gguf.TypeIQ1_M, gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S,
		gguf.TypeIQ3_XXS, gguf.TypeIQ3_S, gguf.TypeIQ4_XS:
		got = gguf.TypeIQ4_NL
	case gguf.TypeQ2_0, gguf.TypeQ2_K, gguf.TypeQ3_K, gguf.TypeTQ1_0, gguf.TypeTQ2_0:
		got = gguf.TypeQ4_0
	case gguf.TypeQ4_K:
		got = gguf.TypeQ5_0
	case gguf.TypeQ5_K:
		got = gguf.TypeQ5_1
	case gguf.TypeQ6_K:
		got = gguf.TypeQ8_0
	default:
		if bs > 32 {
			return 0, "", fmt.Errorf("%w: %s has rows of %d, not a multiple of %v's block of %d, and llama.cpp "+
				"defines no fallback for %v either; pick a type with blocks of 32 or 256", ErrNoFallback, t.Name, ncols, want, bs, want)
		}
	}
	if ncols%int64(got.BlockSize()) != 0 {
		got = gguf.TypeF16
	}
	return got, fmt.Sprintf("rows of %d are not a multiple of %d (%v): %v", ncols, bs, want, got), nil
}

// useMoreBits is llama.cpp's use_more_bits: the first and last eighth of
// the layers and every third layer in between.
func useMoreBits(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }

// layerOf is llama.cpp's layer_info: with experts the layer comes from the
// name (expert tensors are not in layer order in every model), otherwise
// it is the running counter.
func (p *planner) layerOf(counter int, name string) (int, int, error) {
	n := p.info.Layers
	if max(1, p.info.Experts) > 1 {
		i, ok := blockNumber(name)
		if !ok {
			return 0, 0, fmt.Errorf("quantize: cannot tell the layer of tensor %s", name)
		}
		if i < 0 || i >= n {
			return 0, 0, fmt.Errorf("quantize: tensor %s is in layer %d, the model has %d", name, i, n)
		}
		return i, n, nil
	}
	return counter, n, nil
}

// mixedType is llama_tensor_get_type_impl: the preset's per-tensor rules.
// The branch order and every condition follow llama.cpp.
func (p *planner) mixedType(t TensorInfo, newType gguf.Type) (gguf.Type, error) {
	ft := p.target.FileType
	info := p.info
	cat := categorize(t.Name)
	arch := info.Arch
	is := func(fts ...FileType) bool {
		for _, f := range fts {
			if ft == f {
				return true
			}
		}
		return false
	}
	iq2Family := is(FileTypeIQ2_XXS, FileTypeIQ2_XS, FileTypeIQ1_S, FileTypeIQ2_S, FileTypeIQ2_M, FileTypeIQ1_M)

	switch {
	case cat == catOutput || p.tied && cat == catTokenEmbd:
		nx := t.Dims[0]
		switch {
		case ft == FileTypeMXFP4MoE:
			newType = gguf.TypeQ8_0
		case arch == "falcon" || nx%int64(newType.BlockSize()) != 0:
			newType = gguf.TypeQ8_0
		case is(FileTypeIQ2_XXS, FileTypeIQ2_XS, FileTypeIQ3_XXS, FileTypeIQ1_S, FileTypeIQ2_S, FileTypeIQ2_M, FileTypeIQ1_M):
			newType = gguf.TypeQ5_K
		case newType != gguf.TypeQ8_0:
			newType = gguf.TypeQ6_K
		}

	case ft == FileTypeMXFP4MoE:
		// expert tensors (3-D) MXFP4, everything else Q8_0; bailingmoe3's
		// 3-D MLA projections are not experts
		isBailingExpert := arch == "bailingmoe3" && (cat == catFFNUp || cat == catFFNGate || cat == catFFNDown)
		if len(t.Dims) > 2 && t.Dims[2] > 1 && (arch != "bailingmoe3" || isBailingExpert) {
			newType = gguf.TypeMXFP4
		} else {
			newType = gguf.TypeQ8_0
		}

	case cat == catTokenEmbd:
		switch {
		case is(FileTypeIQ2_XXS, FileTypeIQ2_XS, FileTypeIQ1_S, FileTypeIQ1_M):
			newType = gguf.TypeQ2_K
		case is(FileTypeIQ2_S, FileTypeIQ2_M):
			newType = gguf.TypeIQ3_S
		case ft == FileTypeIQ3_XXS:
			newType = gguf.TypeIQ3_S
		case is(FileTypeTQ1_0, FileTypeTQ2_0, FileTypeQ2_0):
			newType = gguf.TypeQ4_K
		}

	case iq2Family:
		switch {
		case isAttnV(cat):
			if info.gqa() >= 4 || info.Experts >= 4 {
				newType = gguf.TypeQ4_K
			} else if is(FileTypeIQ2_S, FileTypeIQ2_M) {
				newType = gguf.TypeIQ3_S
			} else {
				newType = gguf.TypeQ2_K
			}
			p.iAttnV++
		case info.Experts == 8 && cat == catAttnK:
			newType = gguf.TypeQ4_K
		case cat == catFFNDown:
			if p.iFFNDown < info.Layers/8 {
				if is(FileTypeIQ2_S, FileTypeIQ2_M) {
					newType = gguf.TypeIQ3_S
				} else {
					newType = gguf.TypeQ2_K
				}
			}
			p.iFFNDown++
		case cat == catAttnOutput:
			if info.Experts == 8 {
				newType = gguf.TypeQ5_K
			} else if is(FileTypeIQ1_S, FileTypeIQ1_M) {
				newType = gguf.TypeIQ2_XXS
			} else if is(FileTypeIQ2_S, FileTypeIQ2_M) {
				newType = gguf.TypeIQ3_S
			}
		}

	case isAttnV(cat):
		gqa := info.gqa()
		switch {
		case ft == FileTypeQ2_K:
			newType = gguf.TypeQ3_K
			if gqa >= 4 {
				newType = gguf.TypeQ4_K
			}
		case ft == FileTypeQ2_K_S && gqa >= 4:
			newType = gguf.TypeQ4_K
		case ft == FileTypeIQ3_XXS:
			switch {
			case gqa >= 4:
				newType = gguf.TypeQ4_K
			case !p.hasImatrix:
				newType = gguf.TypeIQ3_S
			default:
				newType = gguf.TypeIQ3_XXS
			}
		case is(FileTypeIQ3_XS, FileTypeIQ3_S) && gqa >= 4:
			newType = gguf.TypeQ4_K
		case ft == FileTypeIQ3_M:
			newType = gguf.TypeQ4_K
		case ft == FileTypeQ3_K_M:
			newType = gguf.TypeQ4_K
			if p.iAttnV < 2 {
				newType = gguf.TypeQ5_K
			}
		case ft == FileTypeQ3_K_L:
			newType = gguf.TypeQ5_K
		case is(FileTypeIQ4_NL, FileTypeIQ4_XS) && gqa >= 4:
			newType = gguf.TypeQ5_K
		case is(FileTypeQ4_K_M, FileTypeQ5_K_M) && useMoreBits(p.iAttnV, p.nAttnV):
			newType = gguf.TypeQ6_K
		case ft == FileTypeQ4_K_S && p.iAttnV < 4:
			newType = gguf.TypeQ5_K
		}
		if info.is70B() && (newType == gguf.TypeQ3_K || newType == gguf.TypeQ4_K) {
			// 8 heads share each attn_v: more bits cost little
			newType = gguf.TypeQ5_K
		}
		if info.Experts == 8 {
			newType = gguf.TypeQ8_0
		}
		p.iAttnV++

	case cat == catAttnK:
		switch {
		case info.Experts == 8:
			newType = gguf.TypeQ8_0
		case ft == FileTypeIQ3_XS:
			newType = gguf.TypeIQ3_XXS
		case ft == FileTypeIQ3_XXS:
			newType = gguf.TypeIQ2_S
		}

	case cat == catAttnQ:
		switch ft {
		case FileTypeIQ3_XS:
			newType = gguf.TypeIQ3_XXS
		case FileTypeIQ3_XXS:
			newType = gguf.TypeIQ2_S
		}

	case cat == catFFNDown:
		i, n, err := p.layerOf(p.iFFNDown, t.Name)
		if err != nil {
			return 0, err
		}
		switch {
		case ft == FileTypeQ2_K:
			newType = gguf.TypeQ3_K
		case ft == FileTypeQ2_K_S:
			if i < n/8 {
				newType = gguf.TypeQ4_K
			}
		case ft == FileTypeIQ3_XXS && !p.hasImatrix:
			newType = gguf.TypeQ3_K
			if i < n/8 {
				newType = gguf.TypeQ4_K
			}
		case ft == FileTypeQ3_K_M:
			switch {
			case i < n/16:
				newType = gguf.TypeQ5_K
			case arch != "falcon" || useMoreBits(i, n):
				newType = gguf.TypeQ4_K
			default:
				newType = gguf.TypeQ3_K
			}
		case ft == FileTypeIQ3_M && (i < n/8 || info.Experts == 8 && useMoreBits(i, n)):
			newType = gguf.TypeQ4_K
		case ft == FileTypeQ3_K_L:
			newType = gguf.TypeQ5_K
			if arch == "falcon" {
				newType = gguf.TypeQ4_K
			}
		case ft == FileTypeQ4_K_M:
			if arch == "falcon" {
				switch {
				case i < n/16:
					newType = gguf.TypeQ6_K
				case useMoreBits(i, n):
					newType = gguf.TypeQ5_K
				default:
					newType = gguf.TypeQ4_K
				}
			} else if useMoreBits(i, n) {
				newType = gguf.TypeQ6_K
			}
		case i < n/8 && is(FileTypeIQ4_NL, FileTypeIQ4_XS) && !p.hasImatrix:
			newType = gguf.TypeQ5_K
		case ft == FileTypeQ5_K_M && useMoreBits(i, n):
			newType = gguf.TypeQ6_K
		case ft == FileTypeQ4_K_S && arch != "falcon" && i < n/8:
			newType = gguf.TypeQ5_K
		case is(FileTypeQ4_0, FileTypeQ5_0) && p.hasImatrix && i < n/8:
			// guard the first ffn_down layers; only with an imatrix, so
			// that plain Q4_0/Q5_0 stay what they always were
			newType = gguf.TypeQ4_1
			if ft == FileTypeQ5_0 {
				newType = gguf.TypeQ5_1
			}
		}
		p.iFFNDown++

	case cat == catAttnOutput:
		if arch != "falcon" {
			if info.Experts == 8 {
				if is(FileTypeQ2_K, FileTypeIQ3_XS, FileTypeIQ3_XXS, FileTypeQ3_K_S, FileTypeQ3_K_M, FileTypeIQ4_NL,
					FileTypeQ4_K_S, FileTypeQ4_K_M, FileTypeIQ3_S, FileTypeIQ3_M, FileTypeIQ4_XS) {
					newType = gguf.TypeQ5_K
				}
			} else {
				switch ft {
				case FileTypeQ2_K:
					newType = gguf.TypeQ3_K
				case FileTypeIQ3_XXS:
					newType = gguf.TypeIQ3_S
				case FileTypeQ3_K_M:
					newType = gguf.TypeQ4_K
				case FileTypeQ3_K_L:
					newType = gguf.TypeQ5_K
				case FileTypeIQ3_M:
					newType = gguf.TypeQ4_K
				}
			}
		} else if ft == FileTypeQ3_K_L {
			newType = gguf.TypeQ4_K
		}

	case cat == catAttnQKV:
		switch ft {
		case FileTypeQ3_K_M, FileTypeQ3_K_L, FileTypeIQ3_M:
			newType = gguf.TypeQ4_K
		case FileTypeQ4_K_M:
			newType = gguf.TypeQ5_K
		case FileTypeQ5_K_M:
			newType = gguf.TypeQ6_K
		}

	case cat == catFFNGate:
		i, n, err := p.layerOf(p.iFFNGate, t.Name)
		if err != nil {
			return 0, err
		}
		if ft == FileTypeIQ3_XS && i >= n/8 && i < 7*n/8 {
			newType = gguf.TypeIQ3_XXS
		}
		p.iFFNGate++

	case cat == catFFNUp:
		i, n, err := p.layerOf(p.iFFNUp, t.Name)
		if err != nil {
			return 0, err
		}
		if ft == FileTypeIQ3_XS && i >= n/8 && i < 7*n/8 {
			newType = gguf.TypeIQ3_XXS
		}
		p.iFFNUp++
	}
	return newType, nil
}
