package model

import (
	"fmt"
	"sort"
	"strings"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// Model is a loaded transformer: configuration plus views of its weights
// in the GGUF mapping. It is immutable and safe for concurrent use; the
// per-sequence state lives in Sequence and the scratch space in Runner.
type Model struct {
	Config Config
	File   *gguf.File

	tokEmbd    *gguf.Tensor
	outputNorm []float32
	output     *kernels.Matrix
	layers     []layer
}

// layer is one transformer block: pre-norm attention and pre-norm FFN.
type layer struct {
	attnNorm []float32
	attn     attention
	ffnNorm  []float32
	ffn      feedForward
}

// attention is a block's self-attention (GQA or MLA).
type attention interface {
	// newCache allocates this layer's cache for ctx positions.
	newCache(ctx int, kv KVType) layerCache
	// forward reads r.xn (normed input, n rows) and writes r.out.
	forward(r *Runner, l int, b *Batch)
}

// layerCache is one layer's per-sequence attention cache.
type layerCache interface {
	bytes() int64
}

// feedForward is a block's FFN (dense or mixture of experts).
type feedForward interface {
	// forward reads r.xn and writes r.out.
	forward(r *Runner, l int, b *Batch) error
}

// builder makes an architecture's layers from a file.
type builder func(l *loader, c *Config) ([]layer, error)

var architectures = map[string]builder{}

// register adds an architecture; called from the init of each arch file.
func register(name string, b builder) { architectures[name] = b }

// Architectures lists the supported architecture names.
func Architectures() []string {
	var out []string
	for k := range architectures {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Load builds a Model over an open GGUF file. The file must stay open for
// the life of the model.
func Load(f *gguf.File) (*Model, error) {
	arch, err := f.Architecture()
	if err != nil {
		return nil, err
	}
	build, ok := architectures[arch]
	if !ok {
		return nil, fmt.Errorf("%w: architecture %q (supported: %s)", ErrUnsupported, arch, strings.Join(Architectures(), ", "))
	}
	c, err := ReadConfig(f)
	if err != nil {
		return nil, err
	}
	l := &loader{f: f}
	m := &Model{File: f}
	if c.Vocab == 0 {
		if t, ok := f.Tensor("token_embd.weight"); ok && len(t.Dims) == 2 {
			c.Vocab = int(t.Dims[1])
		}
	}
	m.tokEmbd = l.tensor("token_embd.weight", false, c.Embd, c.Vocab)
	m.outputNorm = l.vector("output_norm.weight", c.Embd)
	m.output = l.matrixOpt("output.weight", true, c.Embd, c.Vocab)
	if m.output == nil && l.err == nil {
		c.TiedOutput = true
		m.output = l.matrix("token_embd.weight", c.Embd, c.Vocab)
	}
	if l.err != nil {
		return nil, l.err
	}
	layers, err := build(l, &c)
	if err == nil {
		err = l.err
	}
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m.Config, m.layers = c, layers
	return m, nil
}

// embed writes the embedding of token tok into dst.
func (m *Model) embed(dst []float32, tok int32) error {
	if tok < 0 || int(tok) >= m.Config.Vocab {
		return fmt.Errorf("model: token id %d out of range [0, %d)", tok, m.Config.Vocab)
	}
	t := m.tokEmbd
	rb := t.RowBytes()
	return kernels.DequantizeRow(t.Type, dst, t.Data[int(tok)*rb:(int(tok)+1)*rb])
}
