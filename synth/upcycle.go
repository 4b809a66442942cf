package synth

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"strings"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
	"github.com/inference-x/inference-x/quantize"
)

// UpcycleConfig says how Upcycle turns a dense model into a MoE.
type UpcycleConfig struct {
	Experts     int // routed experts per layer
	ExpertsUsed int // experts per token (top-k)
	// Noise adds N(0, (Noise·rms(W))²) to every expert's copy of a dense
	// weight W (rms over the whole tensor), so experts differ; 0 keeps
	// exact copies and the MoE computes the dense model's function.
	Noise float64
	Seed  uint64 // router weights and noise
	// Threads is the number of goroutines re-encoding noisy experts (0: one per CPU).
	Threads int
	// Progress, if not nil, is called with the tensor bytes produced so far
	// and the total, from one goroutine at a time.
	Progress func(done, total int64)
}

// Validate checks the expert counts and noise.
func (c UpcycleConfig) Validate() error {
	switch {
	case c.Experts < 2 || c.Experts > MaxExperts:
		return fmt.Errorf("synth: --experts %d must be between 2 and %d (llama.cpp's LLAMA_MAX_EXPERTS)", c.Experts, MaxExperts)
	case c.ExpertsUsed < 1 || c.ExpertsUsed > c.Experts:
		return fmt.Errorf("synth: --top-k %d must be between 1 and --experts %d", c.ExpertsUsed, c.Experts)
	case c.Noise < 0 || math.IsNaN(c.Noise) || math.IsInf(c.Noise, 0):
		return fmt.Errorf("synth: --noise %g must be a finite number >= 0", c.Noise)
	}
	return nil
}

// UpcycleReport summarises an upcycled model.
type UpcycleReport struct {
	ArchIn      string  `json:"arch_in"`
	ArchOut     string  `json:"arch_out"`
	Layers      int     `json:"layers"`
	Experts     int     `json:"experts"`
	ExpertsUsed int     `json:"experts_used"`
	FF          int     `json:"expert_ff"`
	Noise       float64 `json:"noise"`
	Type        string  `json:"ffn_type"` // the dense FFN's type, kept by the experts
	InBytes     int64   `json:"in_bytes"`
	OutBytes    int64   `json:"out_bytes"`
	Tensors     int     `json:"tensors"`
}

// ErrNotDense is wrapped when Upcycle's input is not a dense model it can
// convert.
var ErrNotDense = errors.New("synth: not a dense llama-family model")

// upcycleArch maps a dense architecture to the MoE architecture with the
// same attention whose router renormalises the top-k weights (llama.cpp's
// build_moe_ffn with norm_w), so copies of one FFN add up to that FFN.
var upcycleArch = map[string]string{"llama": "llama", "qwen3": "qwen3moe"}

// Upcycle writes to w a Mixtral-style MoE made from the dense model in: in
// every layer, ffn_gate/ffn_up/ffn_down become the 3-D expert tensors
// ffn_{gate,up,down}_exps holding cfg.Experts copies of the dense weights
// (plus noise if cfg.Noise > 0) in the dense tensors' own type, and a
// random router ffn_gate_inp (F32) is added. llama stays llama (with
// expert_count and expert_used_count), qwen3 becomes qwen3moe; both
// renormalise the top-k weights, so with no noise the MoE computes the
// dense model's function. Everything else is copied unchanged.
func Upcycle(ctx context.Context, in *gguf.File, w io.Writer, cfg UpcycleConfig) (UpcycleReport, error) {
	if err := cfg.Validate(); err != nil {
		return UpcycleReport{}, err
	}
	arch, err := in.Architecture()
	if err != nil {
		return UpcycleReport{}, err
	}
	outArch, ok := upcycleArch[arch]
	if !ok {
		return UpcycleReport{}, fmt.Errorf("%w: architecture %q (supported: llama, qwen3)", ErrNotDense, arch)
	}
	if n, err := in.Int(arch + ".expert_count"); err == nil && n > 0 {
		return UpcycleReport{}, fmt.Errorf("%w: it already has %d experts", ErrNotDense, n)
	}
	layers, err := in.Int(arch + ".block_count")
	if err != nil {
		return UpcycleReport{}, err
	}
	embd, err := in.Int(arch + ".embedding_length")
	if err != nil {
		return UpcycleReport{}, err
	}

	rep := UpcycleReport{
		ArchIn: arch, ArchOut: outArch, Layers: int(layers), Experts: cfg.Experts,
		ExpertsUsed: cfg.ExpertsUsed, Noise: cfg.Noise,
	}
	ffn := map[string]int{} // dense FFN tensor name -> layer
	for i := 0; i < int(layers); i++ {
		gate, up, down, err := denseFFN(in, i, embd)
		if err != nil {
			return UpcycleReport{}, err
		}
		ff := gate.Dims[1]
		ffn[gate.Name], ffn[up.Name], ffn[down.Name] = i, i, i
		if rep.Type == "" {
			rep.Type = gate.Type.String()
		}
		if i == 0 {
			rep.FF = int(ff)
		}
		if int(ff) != rep.FF {
			return UpcycleReport{}, fmt.Errorf("%w: layer %d's FFN is %d wide, layer 0's %d (expert_feed_forward_length is one number)", ErrNotDense, i, ff, rep.FF)
		}
	}

	// the output tensors: each dense FFN tensor becomes its expert tensor,
	// ffn_gate's position also takes the router
	type outTensor struct {
		spec gguf.TensorSpec
		src  *gguf.Tensor // the input tensor (dense FFN weight or copied tensor); nil for the router
	}
	n := int64(cfg.Experts)
	var outs []outTensor
	for k := range in.Tensors {
		t := &in.Tensors[k]
		layer, isFFN := ffn[t.Name]
		if !isFFN {
			outs = append(outs, outTensor{gguf.TensorSpec{Name: t.Name, Type: t.Type, Dims: t.Dims}, t})
			continue
		}
		if strings.HasSuffix(t.Name, "ffn_gate.weight") {
			outs = append(outs, outTensor{gguf.TensorSpec{
				Name: fmt.Sprintf("blk.%d.ffn_gate_inp.weight", layer), Type: gguf.TypeF32, Dims: []int64{embd, n},
			}, nil})
		}
		name := strings.TrimSuffix(t.Name, ".weight") + "_exps.weight"
		outs = append(outs, outTensor{gguf.TensorSpec{Name: name, Type: t.Type, Dims: []int64{t.Dims[0], t.Dims[1], n}}, t})
	}
	specs := make([]gguf.TensorSpec, len(outs))
	sizes := make([]int64, len(outs))
	for i, o := range outs {
		specs[i] = o.spec
		size, err := quantize.TensorBytes(o.spec.Type, o.spec.Dims)
		if err != nil {
			return UpcycleReport{}, fmt.Errorf("synth: tensor %s: %w", o.spec.Name, err)
		}
		sizes[i] = size
		rep.OutBytes += size
	}
	for _, t := range in.Tensors {
		rep.InBytes += t.Size
	}
	rep.Tensors = len(specs)
	if cfg.Noise > 0 {
		for name := range ffn {
			t, _ := in.Tensor(name)
			if f, err := kernels.Lookup(t.Type); err != nil || f.Quantize == nil || f.Dequantize == nil {
				return UpcycleReport{}, fmt.Errorf("%w: --noise needs to decode and re-encode %v (tensor %s)", kernels.ErrNoKernel, t.Type, name)
			}
		}
	}

	gw, err := gguf.NewWriter(w, upcycleKV(in.KV, arch, outArch, cfg, rep.FF), specs)
	if err != nil {
		return UpcycleReport{}, err
	}
	progress := quantize.NewTracker(rep.OutBytes, cfg.Progress)
	conv := quantize.Converter{Threads: cfg.Threads, Progress: progress.Add}
	fill := func(ctx context.Context, i int, buf []byte) ([]byte, error) {
		o := outs[i]
		switch {
		case o.src == nil: // the router
			d := tensorDef{Name: o.spec.Name, Dims: o.spec.Dims, Std: float32(routerStd / math.Sqrt(float64(embd)))}
			err := conv.Convert(ctx, gguf.TypeF32, int(embd), int(n), d.source(cfg.Seed), nil, buf)
			return buf, err
		case len(o.spec.Dims) == len(o.src.Dims): // copied unchanged
			progress.Add(o.src.Size)
			return o.src.Data, nil
		case cfg.Noise == 0:
			for e := int64(0); e < n; e++ {
				copy(buf[e*o.src.Size:], o.src.Data)
			}
			progress.Add(int64(len(buf)))
			return buf, nil
		}
		return buf, noisyExperts(ctx, conv, o.src, o.spec.Name, cfg, buf)
	}
	if err := quantize.Stream(ctx, gw, sizes, fill); err != nil {
		return UpcycleReport{}, err
	}
	return rep, gw.Close()
}

// denseFFN returns layer i's SwiGLU weights after checking their shapes:
// gate and up [embd, ff], down [ff, embd], and no biases.
func denseFFN(in *gguf.File, i int, embd int64) (gate, up, down *gguf.Tensor, err error) {
	get := func(part string) *gguf.Tensor {
		name := fmt.Sprintf("blk.%d.ffn_%s.weight", i, part)
		t, ok := in.Tensor(name)
		if !ok && err == nil {
			err = fmt.Errorf("%w: layer %d has no %s", ErrNotDense, i, name)
		}
		if _, ok := in.Tensor(fmt.Sprintf("blk.%d.ffn_%s.bias", i, part)); ok && err == nil {
			err = fmt.Errorf("%w: layer %d has FFN biases, which the MoE layout has no place for", ErrNotDense, i)
		}
		return t
	}
	gate, up, down = get("gate"), get("up"), get("down")
	if err != nil {
		return nil, nil, nil, err
	}
	ff := gate.Dims[len(gate.Dims)-1]
	ok := func(t *gguf.Tensor, d0, d1 int64) bool { return len(t.Dims) == 2 && t.Dims[0] == d0 && t.Dims[1] == d1 }
	if !ok(gate, embd, ff) || !ok(up, embd, ff) || !ok(down, ff, embd) {
		return nil, nil, nil, fmt.Errorf("%w: layer %d's FFN shapes %s %s %s are not [%d, ff] [%d, ff] [ff, %d]",
			ErrNotDense, i, gate.Shape(), up.Shape(), down.Shape(), embd, embd, embd)
	}
	return gate, up, down, nil
}

// noisyExperts writes cfg.Experts noisy copies of the dense tensor t into
// buf, re-encoded in t's type. Row r of the expert tensor is dense row
// r mod rows plus noise from the stream of (seed, name, r).
func noisyExperts(ctx context.Context, conv quantize.Converter, t *gguf.Tensor, name string, cfg UpcycleConfig, buf []byte) error {
	cols, rows := int(t.Dims[0]), int(t.Dims[1])
	dense, err := quantize.DecodeSource(t.Type, cols, t.Data)
	if err != nil {
		return err
	}
	// rms of the dense weight, for the noise scale
	row := make([]float32, cols)
	var ss float64
	for r := 0; r < rows; r++ {
		if err := dense(row, r, r+1); err != nil {
			return err
		}
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
	}
	std := float32(cfg.Noise * math.Sqrt(ss/float64(cols*rows)))
	h := fnv.New64a()
	h.Write([]byte(name))
	key := h.Sum64()
	src := func(dst []float32, r0, r1 int) error {
		noise := make([]float32, cols)
		for r := r0; r < r1; r++ {
			x := dst[(r-r0)*cols : (r-r0+1)*cols]
			if err := dense(x, r%rows, r%rows+1); err != nil {
				return err
			}
			g := newRNG(cfg.Seed, key, r)
			g.normals(noise, std)
			for j := range x {
				x[j] += noise[j]
			}
		}
		return nil
	}
	var im []float32
	if f, _ := kernels.Lookup(t.Type); f.NeedsImatrix {
		im = quantize.Ones(cols)
	}
	return conv.Convert(ctx, t.Type, cols, rows*cfg.Experts, src, im, buf)
}

// upcycleKV copies the dense model's metadata, renaming the architecture
// (and its keys) when it changes, and adds the expert keys.
func upcycleKV(kvs []gguf.KV, arch, outArch string, cfg UpcycleConfig, ff int) []gguf.KV {
	out := make([]gguf.KV, 0, len(kvs)+3)
	drop := map[string]bool{
		outArch + ".expert_count": true, outArch + ".expert_used_count": true,
		outArch + ".expert_feed_forward_length": true,
	}
	for _, kv := range kvs {
		if outArch != arch {
			if kv.Key == gguf.KeyArchitecture {
				kv.Value = gguf.MustValue(outArch)
			} else if rest, ok := strings.CutPrefix(kv.Key, arch+"."); ok {
				kv.Key = outArch + "." + rest
			}
		}
		if drop[kv.Key] {
			continue
		}
		out = append(out, kv)
	}
	out = append(out,
		gguf.KV{Key: outArch + ".expert_count", Value: gguf.MustValue(uint32(cfg.Experts))},
		gguf.KV{Key: outArch + ".expert_used_count", Value: gguf.MustValue(uint32(cfg.ExpertsUsed))})
	if outArch != "llama" {
		out = append(out, gguf.KV{Key: outArch + ".expert_feed_forward_length", Value: gguf.MustValue(uint32(ff))})
	}
	return out
}
