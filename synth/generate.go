package synth

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/quantize"
)

// Options say how Generate writes a model.
type Options struct {
	// Type is a quantize preset (Q4_K_M, Q8_0, IQ4_XS, ...) or a bare ggml
	// type (F16, Q4_K, ...); "" means F32. See quantize.ParseTarget.
	Type string
	// Pure gives every quantizable tensor the base type (llama-quantize --pure).
	Pure bool
	// Seed selects the weights: the same Config, Seed and Type give the
	// same bytes on every machine, whatever Threads is.
	Seed uint64
	// Threads is the number of goroutines drawing and quantizing (0: one per CPU).
	Threads int
	// Progress, if not nil, is called with the tensor bytes written so far
	// and the total, from one goroutine at a time.
	Progress func(done, total int64)
}

// Report summarises a generated model.
type Report struct {
	Arch       string         `json:"arch"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	FileType   uint32         `json:"file_type"`
	Imatrix    string         `json:"imatrix"` // "none" or "ones"
	Seed       uint64         `json:"seed"`
	Params     int64          `json:"params"`
	Bytes      int64          `json:"tensor_bytes"`
	TypeCounts map[string]int `json:"type_counts"`
	Tensors    int            `json:"tensors"`
}

// Plan returns the tensors of the model and their types under opt, without
// generating anything: what Generate would write.
func Plan(c Config, opt Options) (quantize.Plan, []gguf.TensorSpec, error) {
	if c.Name == "" {
		c.Name = "synthetic-" + c.Arch
	}
	if err := c.Validate(); err != nil {
		return quantize.Plan{}, nil, err
	}
	name := opt.Type
	if name == "" {
		name = "F32"
	}
	target, err := quantize.ParseTarget(name, opt.Pure)
	if err != nil {
		return quantize.Plan{}, nil, err
	}
	defs := c.layout()
	infos := make([]quantize.TensorInfo, len(defs))
	for i, d := range defs {
		infos[i] = quantize.TensorInfo{Name: d.Name, Type: gguf.TypeF32, Dims: d.Dims}
	}
	info := quantize.ModelInfo{Arch: c.Arch, Layers: c.Layers, Heads: c.Heads, KVHeads: c.KVHeads, Experts: c.Experts}
	if c.Arch == "deepseek2" {
		info.KVHeads = 1
	}
	if !c.moe() {
		info.Experts = 0
	}
	plan, err := quantize.NewPlan(info, target, false, infos)
	if err != nil {
		return quantize.Plan{}, nil, err
	}
	if plan.NeedsImatrix {
		// an all-ones importance matrix, which changes a few choices as a
		// real one would
		if plan, err = quantize.NewPlan(info, target, true, infos); err != nil {
			return quantize.Plan{}, nil, err
		}
		plan.NeedsImatrix = true
	}
	if err := quantize.CheckPlan(plan, true); err != nil {
		return quantize.Plan{}, nil, err
	}
	specs := make([]gguf.TensorSpec, len(defs))
	for i, d := range defs {
		specs[i] = gguf.TensorSpec{Name: d.Name, Type: plan.Choices[i].To, Dims: d.Dims}
	}
	return plan, specs, nil
}

// Generate writes the model c describes to w as a GGUF file: deterministic
// random weights of realistic scale in the types opt.Type chooses (the
// per-tensor choices of llama.cpp's presets; types that need an importance
// matrix get an all-ones one), a SentencePiece vocabulary of c.Vocab
// tokens, and the metadata llama.cpp reads for the architecture.
//
// Tensors are in llama.cpp's order and the metadata ends with
// general.quantization_version and general.file_type, so an F32 model
// quantized by llama-quantize is byte-identical to Generate's output for
// the same type. Memory holds at most two tensors; the work runs on
// opt.Threads goroutines.
func Generate(ctx context.Context, c Config, opt Options, w io.Writer) (Report, error) {
	if c.Name == "" {
		c.Name = "synthetic-" + c.Arch
	}
	plan, specs, err := Plan(c, opt)
	if err != nil {
		return Report{}, err
	}
	vocab, err := BuildVocab(c.Vocab)
	if err != nil {
		return Report{}, err
	}
	kvs := append(c.metadata(), vocabKV(vocab)...)
	kvs = quantize.OutputKV(kvs, plan.Target.FileType)

	defs := c.layout()
	infos := make([]quantize.TensorInfo, len(specs))
	for i, s := range specs {
		infos[i] = quantize.TensorInfo{Name: s.Name, Type: s.Type, Dims: s.Dims}
	}
	order := quantize.LlamaOrder(infos)
	ordered := make([]gguf.TensorSpec, len(order))
	sizes := make([]int64, len(order))
	rep := Report{
		Arch: c.Arch, Name: c.Name, Type: plan.Target.String(), FileType: uint32(plan.Target.FileType),
		Imatrix: "none", Seed: opt.Seed, TypeCounts: map[string]int{}, Tensors: len(specs),
	}
	if plan.NeedsImatrix {
		rep.Imatrix = "ones"
	}
	for k, i := range order {
		ordered[k] = specs[i]
		size, err := quantize.TensorBytes(specs[i].Type, specs[i].Dims)
		if err != nil {
			return Report{}, fmt.Errorf("synth: tensor %s: %w", specs[i].Name, err)
		}
		sizes[k] = size
		rep.Bytes += size
		rep.TypeCounts[specs[i].Type.String()]++
		n := int64(1)
		for _, d := range specs[i].Dims {
			n *= d
		}
		rep.Params += n
	}

	gw, err := gguf.NewWriter(w, kvs, ordered)
	if err != nil {
		return Report{}, err
	}
	conv := quantize.Converter{Threads: opt.Threads}
	fill := func(ctx context.Context, k int, buf []byte) ([]byte, error) {
		i := order[k]
		d, s := defs[i], specs[i]
		cols := int(d.Dims[0])
		rows := 1
		for _, x := range d.Dims[1:] {
			rows *= int(x)
		}
		var im []float32
		if plan.NeedsImatrix && plan.Choices[i].Quantizable && s.Type.Traits().Quantized {
			im = quantize.Ones(cols)
		}
		if err := conv.Convert(ctx, s.Type, cols, rows, d.source(opt.Seed), im, buf); err != nil {
			return nil, fmt.Errorf("synth: tensor %s: %w", d.Name, err)
		}
		return buf, nil
	}
	var progress func(int64)
	if opt.Progress != nil {
		progress = func(done int64) { opt.Progress(done, rep.Bytes) }
	}
	if err := quantize.Stream(ctx, gw, sizes, fill, progress); err != nil {
		return Report{}, err
	}
	return rep, gw.Close()
}

// WriteFile generates the model into the file at path, removing the file
// if anything fails.
func WriteFile(ctx context.Context, c Config, opt Options, path string) (rep Report, err error) {
	f, err := os.Create(path)
	if err != nil {
		return Report{}, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	return Generate(ctx, c, opt, f)
}

// source returns the Source drawing the tensor's values: row r comes from
// its own PCG stream keyed by (seed, tensor name, r), so every row is the
// same whichever goroutine draws it, and a tensor does not change when
// other tensors are added or removed.
func (d tensorDef) source(seed uint64) quantize.Source {
	h := fnv.New64a()
	h.Write([]byte(d.Name))
	key := h.Sum64()
	cols := int(d.Dims[0])
	return func(dst []float32, r0, r1 int) error {
		for r := r0; r < r1; r++ {
			row := dst[(r-r0)*cols : (r-r0+1)*cols]
			g := newRNG(seed, key, r)
			if d.Uniform {
				g.uniforms(row, normLo, normHi)
			} else {
				g.normals(row, d.Std)
			}
		}
		return nil
	}
}
