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
	// Progress, if not nil, is called with the tensor bytes produced so far
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

// Plan returns the tensors of the model (in layout order) and their types
// under opt, without generating anything: what Generate would write. When
// the target needs an importance matrix, the plan is made with one and
// NeedsImatrix is set: Generate then quantizes with an all-ones matrix.
func Plan(c Config, opt Options) (quantize.Plan, []gguf.TensorSpec, error) {
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

// genJob is a planned model: its report and what the writer needs.
type genJob struct {
	rep   Report
	plan  quantize.Plan
	defs  []tensorDef // in layout order, as plan.Choices
	order []int       // output position -> layout index
	specs []gguf.TensorSpec
	sizes []int64
}

func prepare(c Config, opt Options) (*genJob, error) {
	plan, specs, err := Plan(c, opt)
	if err != nil {
		return nil, err
	}
	j := &genJob{plan: plan, defs: c.layout()}
	infos := make([]quantize.TensorInfo, len(specs))
	for i, s := range specs {
		infos[i] = quantize.TensorInfo{Name: s.Name, Type: s.Type, Dims: s.Dims}
	}
	j.order = quantize.LlamaOrder(infos)
	j.rep = Report{
		Arch: c.Arch, Name: c.Name, Type: plan.Target.String(), FileType: uint32(plan.Target.FileType),
		Imatrix: "none", Seed: opt.Seed, TypeCounts: map[string]int{}, Tensors: len(specs),
	}
	if plan.NeedsImatrix {
		j.rep.Imatrix = "ones"
	}
	for _, i := range j.order {
		size, err := quantize.TensorBytes(specs[i].Type, specs[i].Dims)
		if err != nil {
			return nil, fmt.Errorf("synth: tensor %s: %w", specs[i].Name, err)
		}
		j.specs = append(j.specs, specs[i])
		j.sizes = append(j.sizes, size)
		j.rep.Bytes += size
		j.rep.TypeCounts[specs[i].Type.String()]++
		n := int64(1)
		for _, d := range specs[i].Dims {
			n *= d
		}
		j.rep.Params += n
	}
	return j, nil
}

// Describe returns the report Generate would return for c and opt
// without generating anything: parameter count, tensor bytes, types.
func Describe(c Config, opt Options) (Report, error) {
	if c.Name == "" {
		c.Name = "synthetic-" + c.Arch
	}
	j, err := prepare(c, opt)
	if err != nil {
		return Report{}, err
	}
	return j.rep, nil
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
	j, err := prepare(c, opt)
	if err != nil {
		return Report{}, err
	}
	vocab, err := BuildVocab(c.Vocab)
	if err != nil {
		return Report{}, err
	}
	kvs := quantize.OutputKV(append(c.metadata(), vocabKV(vocab)...), j.plan.Target.FileType)
	gw, err := gguf.NewWriter(w, kvs, j.specs)
	if err != nil {
		return Report{}, err
	}
	progress := quantize.NewTracker(j.rep.Bytes, opt.Progress)
	conv := quantize.Converter{Threads: opt.Threads, Progress: progress.Add}
	fill := func(ctx context.Context, k int, buf []byte) ([]byte, error) {
		i := j.order[k]
		d, s, ch := j.defs[i], j.specs[k], j.plan.Choices[i]
		cols := int(d.Dims[0])
		rows := 1
		for _, x := range d.Dims[1:] {
			rows *= int(x)
		}
		var im []float32
		if j.plan.NeedsImatrix && ch.Quantizable && s.Type.Traits().Quantized {
			im = quantize.Ones(cols)
		}
		if err := conv.Convert(ctx, s.Type, cols, rows, d.source(opt.Seed), im, buf); err != nil {
			return nil, fmt.Errorf("synth: tensor %s: %w", d.Name, err)
		}
		return buf, nil
	}
	if err := quantize.Stream(ctx, gw, j.sizes, fill); err != nil {
		return Report{}, err
	}
	return j.rep, gw.Close()
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
