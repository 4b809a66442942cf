package quantize

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// Metadata keys llama-quantize rewrites.
const (
	KeyFileType            = "general.file_type"
	KeyQuantizationVersion = "general.quantization_version"
	// QuantizationVersion is ggml's GGML_QNT_VERSION.
	QuantizationVersion = 2
)

// ErrNeedsImatrix is wrapped when a target needs an importance matrix.
var ErrNeedsImatrix = errors.New("quantize: this type needs an importance matrix")

// Options configure Quantize.
type Options struct {
	Target Target
	// Threads is the number of goroutines converting rows (0: one per CPU).
	Threads int
	// ImatrixOnes quantizes with an all-ones importance matrix, which lets
	// the types that refuse to run without one (IQ2_XXS, IQ1_S, Q2_K_S, ...)
	// run, like llama.cpp given such a matrix. Real importance matrices are
	// not read yet.
	ImatrixOnes bool
	// Progress, if not nil, is called with the tensor bytes produced so far
	// and the total, from one goroutine at a time.
	Progress func(done, total int64)
}

// TensorReport is one tensor of a Report.
type TensorReport struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	From     string  `json:"from"`
	To       string  `json:"to"`
	InBytes  int64   `json:"in_bytes"`
	OutBytes int64   `json:"out_bytes"`
	Fallback string  `json:"fallback,omitempty"`
}

// Report summarises a conversion.
type Report struct {
	Target      string         `json:"target"`
	FileType    FileType       `json:"file_type"`
	Pure        bool           `json:"pure"`
	Imatrix     string         `json:"imatrix"` // "none" or "ones"
	Requantized bool           `json:"requantized"`
	Params      int64          `json:"params"`
	InBytes     int64          `json:"in_bytes"`
	OutBytes    int64          `json:"out_bytes"`
	TypeCounts  map[string]int `json:"type_counts"`
	Tensors     []TensorReport `json:"tensors"`
}

// BitsPerWeight returns the output's tensor bits per parameter.
func (r Report) BitsPerWeight() float64 {
	if r.Params == 0 {
		return 0
	}
	return float64(r.OutBytes) * 8 / float64(r.Params)
}

// OutputKV returns the metadata of a converted model as llama-quantize
// writes it: kvs without split keys, general.quantization_version and
// general.file_type, then those two appended (in that order).
func OutputKV(kvs []gguf.KV, ft FileType) []gguf.KV {
	out := make([]gguf.KV, 0, len(kvs)+2)
	for _, kv := range kvs {
		switch kv.Key {
		case gguf.KeySplitNo, gguf.KeySplitCount, gguf.KeySplitTensors, KeyQuantizationVersion, KeyFileType:
			continue
		}
		out = append(out, kv)
	}
	return append(out,
		gguf.KV{Key: KeyQuantizationVersion, Value: gguf.MustValue(uint32(QuantizationVersion))},
		gguf.KV{Key: KeyFileType, Value: gguf.MustValue(uint32(ft))})
}

// job is a planned conversion: the report and what the writer needs.
type job struct {
	rep   Report
	plan  Plan
	order []int // output position -> input tensor index
	specs []gguf.TensorSpec
	sizes []int64
}

// prepare plans the conversion of in and fills the report.
func prepare(in *gguf.File, opt Options) (*job, error) {
	info, err := ModelInfoFromFile(in)
	if err != nil {
		return nil, err
	}
	infos := make([]TensorInfo, len(in.Tensors))
	for i, t := range in.Tensors {
		infos[i] = TensorInfo{Name: t.Name, Type: t.Type, Dims: t.Dims}
	}
	plan, err := NewPlan(info, opt.Target, opt.ImatrixOnes, infos)
	if err != nil {
		return nil, err
	}
	if err := CheckPlan(plan, opt.ImatrixOnes); err != nil {
		return nil, err
	}
	j := &job{plan: plan, order: LlamaOrder(infos)}
	j.rep = Report{
		Target: opt.Target.String(), FileType: opt.Target.FileType, Pure: opt.Target.Pure,
		Imatrix: "none", TypeCounts: map[string]int{},
	}
	if opt.ImatrixOnes {
		j.rep.Imatrix = "ones"
	}
	rep := &j.rep
	for _, i := range j.order {
		t, ch := &in.Tensors[i], plan.Choices[i]
		size, err := TensorBytes(ch.To, t.Dims)
		if err != nil {
			return nil, fmt.Errorf("quantize: tensor %s: %w", t.Name, err)
		}
		j.specs = append(j.specs, gguf.TensorSpec{Name: t.Name, Type: ch.To, Dims: t.Dims})
		j.sizes = append(j.sizes, size)
		if ch.To != ch.From && ch.From.Traits().Quantized {
			rep.Requantized = true
		}
		rep.Params += t.Elements()
		rep.InBytes += t.Size
		rep.OutBytes += size
		rep.TypeCounts[ch.To.String()]++
		rep.Tensors = append(rep.Tensors, TensorReport{
			Name: t.Name, Shape: t.Dims, From: ch.From.String(), To: ch.To.String(),
			InBytes: t.Size, OutBytes: size, Fallback: ch.Fallback,
		})
	}
	return j, nil
}

// Describe returns the report Quantize would return for in and opt,
// without converting anything (llama-quantize --dry-run).
func Describe(in *gguf.File, opt Options) (Report, error) {
	j, err := prepare(in, opt)
	if err != nil {
		return Report{}, err
	}
	return j.rep, nil
}

// Quantize converts the model in to opt.Target and writes it to w as
// llama-quantize does: the same per-tensor types, the same bytes for the
// deterministic quantizers, tensors in llama.cpp's order, metadata copied
// with general.file_type and general.quantization_version set. Tensors
// that keep their type are copied from the input mapping; the others are
// decoded to f32 (requantizing quantized input) and encoded on
// opt.Threads goroutines. Memory holds at most two output tensors.
func Quantize(ctx context.Context, in *gguf.File, w io.Writer, opt Options) (Report, error) {
	j, err := prepare(in, opt)
	if err != nil {
		return Report{}, err
	}
	gw, err := gguf.NewWriter(w, OutputKV(in.KV, opt.Target.FileType), j.specs)
	if err != nil {
		return Report{}, err
	}
	progress := NewTracker(j.rep.OutBytes, opt.Progress)
	conv := Converter{Threads: opt.Threads, Progress: progress.Add}
	fill := func(ctx context.Context, k int, buf []byte) ([]byte, error) {
		t, ch := &in.Tensors[j.order[k]], j.plan.Choices[j.order[k]]
		if ch.To == ch.From {
			progress.Add(t.Size)
			return t.Data, nil
		}
		cols := int(t.Dims[0])
		rows := int(t.Rows())
		src, err := DecodeSource(t.Type, cols, t.Data)
		if err != nil {
			return nil, fmt.Errorf("quantize: tensor %s: %w", t.Name, err)
		}
		var im []float32
		if opt.ImatrixOnes {
			im = Ones(cols)
		}
		if err := conv.Convert(ctx, ch.To, cols, rows, src, im, buf); err != nil {
			return nil, fmt.Errorf("quantize: tensor %s to %v: %w", t.Name, ch.To, err)
		}
		return buf, nil
	}
	if err := Stream(ctx, gw, j.sizes, fill); err != nil {
		return Report{}, err
	}
	return j.rep, gw.Close()
}

// CheckPlan returns an error if plan cannot run in this build: a tensor
// needs an importance matrix and imatrix is false, or a type it converts
// to or from has no kernel.
func CheckPlan(plan Plan, imatrix bool) error {
	for _, ch := range plan.Choices {
		if ch.NeedsImatrix && !imatrix {
			return fmt.Errorf("%w: %s would be %v, which llama.cpp refuses to produce without one; "+
				"pick a type of 3 bits or more, or use an all-ones matrix for tests", ErrNeedsImatrix, ch.Name, ch.To)
		}
		if ch.To == ch.From {
			continue
		}
		if f, err := kernels.Lookup(ch.To); err != nil || f.Quantize == nil {
			return fmt.Errorf("%w: this build cannot quantize to %v (tensor %s)", kernels.ErrNoKernel, ch.To, ch.Name)
		}
		if f, err := kernels.Lookup(ch.From); err != nil || f.Dequantize == nil {
			return fmt.Errorf("%w: this build cannot decode %v (tensor %s)", kernels.ErrNoKernel, ch.From, ch.Name)
		}
	}
	return nil
}

// TensorBytes returns the data size of a tensor of type t and shape dims.
func TensorBytes(t gguf.Type, dims []int64) (int64, error) {
	if len(dims) == 0 {
		return 0, errors.New("no dimensions")
	}
	rb, err := t.RowBytes(int(dims[0]))
	if err != nil {
		return 0, err
	}
	n := int64(rb)
	for _, d := range dims[1:] {
		n *= d
	}
	return n, nil
}

// DecodeSource returns a Source reading rows of cols values of type t from
// data, decoded with kernels.
func DecodeSource(t gguf.Type, cols int, data []byte) (Source, error) {
	rb, err := t.RowBytes(cols)
	if err != nil {
		return nil, err
	}
	f, err := kernels.Lookup(t)
	if err != nil {
		return nil, err
	}
	if f.Dequantize == nil {
		return nil, fmt.Errorf("%w: %v has no dequantizer", kernels.ErrNoKernel, t)
	}
	return func(dst []float32, r0, r1 int) error {
		f.Dequantize(dst, data[r0*rb:r1*rb])
		return nil
	}, nil
}
