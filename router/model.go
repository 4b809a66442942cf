package router

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strconv"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
	"github.com/inference-x/inference-x/model"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// ModelInfo is what coordinator and expert nodes must agree on about a
// model: its routed-expert layout, enough to validate Forward calls and
// to fingerprint the model.
type ModelInfo struct {
	Arch        string
	Fingerprint string
	Layers      int
	Embd        int
	Experts     int
	ExpertsUsed int
	// MoELayers lists the layers with routed experts, ascending.
	MoELayers []int
	// ExpertHashes maps each routed expert tensor's name to the SHA-256
	// digests of its experts' slices of the whole model (Experts*32
	// bytes): hashed from the data of a whole model (gguf.SliceHashes,
	// cached beside it), read from the metadata ixctl split writes into
	// a shard. The fingerprint covers them.
	ExpertHashes map[string][]byte
	// Hashing says how the hashes of a whole model were obtained (zero
	// for a shard, whose hashes are trusted from its metadata).
	Hashing gguf.HashStats
	// ActType[l] is the encoding of layer l's activations on the wire: the
	// companion type of its expert gate and up weights, or F32 when they
	// take f32 activations or differ in companion type. Meaningful for
	// MoE layers only.
	ActType []gguf.Type
}

// IsMoE reports whether l is a MoE layer.
func (m *ModelInfo) IsMoE(l int) bool {
	_, ok := slices.BinarySearch(m.MoELayers, l)
	return ok && l < len(m.ActType)
}

// expertTensors are the names of a layer's routed expert weights.
var expertTensors = [...]string{"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"}

// InfoFromFile reads the model's hyperparameters and the types and shapes
// of its expert tensors. A MoE layer is one with ffn_gate_exps.
func InfoFromFile(f *gguf.File) (ModelInfo, error) {
	c, err := model.ReadConfig(f)
	if err != nil {
		return ModelInfo{}, err
	}
	if c.Experts <= 0 {
		return ModelInfo{}, fmt.Errorf("router: %s model has no routed experts", c.Arch)
	}
	info := ModelInfo{Arch: c.Arch, Layers: c.Layers, Embd: c.Embd, Experts: c.Experts, ExpertsUsed: c.ExpertsUsed,
		ActType: make([]gguf.Type, c.Layers)}
	h := sha256.New()
	field := func(k string, v any) { fmt.Fprintf(h, "%s=%v\n", k, v) }
	field("arch", c.Arch)
	field("layers", c.Layers)
	field("embd", c.Embd)
	field("experts", c.Experts)
	field("experts_used", c.ExpertsUsed)
	field("expert_ff", c.ExpertFF)
	sh, err := f.Shard(c.Experts)
	if err != nil {
		return ModelInfo{}, err
	}
	if info.ExpertHashes, info.Hashing, err = expertHashes(f, &c, sh); err != nil {
		return ModelInfo{}, err
	}
	for l := range c.Layers {
		gate, ok := f.Tensor("blk." + strconv.Itoa(l) + "." + expertTensors[0])
		if !ok {
			continue
		}
		if err := expertShape(f, l, &c, sh.ExpertsIn(l, c.Experts), info.ExpertHashes, h); err != nil {
			return ModelInfo{}, err
		}
		fm, err := kernels.Lookup(gate.Type)
		if err != nil {
			return ModelInfo{}, fmt.Errorf("router: layer %d: %w", l, err)
		}
		info.ActType[l] = fm.VecDot
		if fm.Dot == nil {
			info.ActType[l] = gguf.TypeF32
		}
		// A batch carries one quantized copy of its rows, the gate's; when
		// up takes another type the backend quantizes f32 rows for it, so
		// the wire carries f32.
		up, _ := f.Tensor("blk." + strconv.Itoa(l) + "." + expertTensors[1])
		if uf, err := kernels.Lookup(up.Type); err != nil || uf.VecDot != fm.VecDot || (uf.Dot == nil) != (fm.Dot == nil) {
			info.ActType[l] = gguf.TypeF32
		}
		info.MoELayers = append(info.MoELayers, l)
	}
	if len(info.MoELayers) == 0 {
		return ModelInfo{}, fmt.Errorf("router: the %s model has no ffn_gate_exps tensors", c.Arch)
	}
	info.Fingerprint = hex.EncodeToString(h.Sum(nil)[:12])
	if sh != nil && sh.Fingerprint != info.Fingerprint {
		return ModelInfo{}, fmt.Errorf("router: %w: the %s shard says it is of model %s but its tensors are of model %s",
			gguf.ErrShard, sh.Role, sh.Fingerprint, info.Fingerprint)
	}
	return info, nil
}

// expertShape checks layer l's three expert tensors, which hold n of the
// model's experts (all but in a shard file), and adds their types and
// whole-model shapes and content digests to the fingerprint, so every
// shard of a model has the model's fingerprint.
func expertShape(f *gguf.File, l int, c *model.Config, n int, sums map[string][]byte, h hash.Hash) error {
	want := [3][3]int64{
		{int64(c.Embd), int64(c.ExpertFF), int64(n)},
		{int64(c.Embd), int64(c.ExpertFF), int64(n)},
		{int64(c.ExpertFF), int64(c.Embd), int64(n)},
	}
	for i, name := range expertTensors {
		full := "blk." + strconv.Itoa(l) + "." + name
		t, ok := f.Tensor(full)
		if !ok {
			return fmt.Errorf("router: missing tensor %s", full)
		}
		if len(t.Dims) != 3 || t.Dims[0] != want[i][0] || t.Dims[1] != want[i][1] || t.Dims[2] != want[i][2] {
			return fmt.Errorf("router: tensor %s has shape %s, want %v", full, t.Shape(), want[i])
		}
		fmt.Fprintf(h, "%s %v %v %x\n", full, t.Type, []int64{want[i][0], want[i][1], int64(c.Experts)}, tensorHash(sums[full]))
	}
	return nil
}

// Proto returns the wire form.
func (m *ModelInfo) Proto() *ixv1.ModelInfo {
	p := &ixv1.ModelInfo{
		Architecture: m.Arch, Fingerprint: m.Fingerprint, BlockCount: uint32(m.Layers),
		EmbeddingLength: uint32(m.Embd), ExpertCount: uint32(m.Experts), ExpertUsedCount: uint32(m.ExpertsUsed),
	}
	for _, l := range m.MoELayers {
		p.MoeLayers = append(p.MoeLayers, uint32(l))
	}
	return p
}
