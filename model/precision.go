package model

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
)

// Per-sequence layer precision (issue 12, adaptive precision).
//
// A Variant is one layer built over other weights: a GGUF file (in memory
// or mapped) holding lower-precision copies of some of the layer's tensors
// under their base names; tensors it lacks come from the model's file. A
// Precision names a Variant (or the base weights) for every layer, and a
// Sequence carrying one is evaluated with those weights. Sequences with
// different precisions may share a Forward: for each layer the rows are
// grouped by the weights they use, each group runs as its own sub-batch,
// and the outputs are scattered back, so a row's result does not depend
// on what else is in the batch. The model file is never changed.

// Variant is a layer's weights taken partly from another file.
type Variant struct {
	layer int
	ly    layer
	file  *gguf.File
	moe   bool // the routed experts come from file
	names []string
}

// Layer returns the layer index.
func (v *Variant) Layer() int { return v.layer }

// File returns the file the variant's tensors come from.
func (v *Variant) File() *gguf.File { return v.file }

// Tensors returns the names of the tensors taken from the variant's file.
func (v *Variant) Tensors() []string { return v.names }

// Variants builds a Variant for every layer of which over holds at least
// one tensor (named blk.N.* as in the model's file). Each tensor of over
// must have the base tensor's shape; its type may differ. The other
// tensors of those layers are the model's. over must stay open while the
// variants are in use.
func (m *Model) Variants(over *gguf.File) ([]*Variant, error) {
	byLayer := map[int][]string{}
	for i := range over.Tensors {
		name := over.Tensors[i].Name
		l, ok := layerOf(name)
		if !ok || l >= len(m.layers) {
			return nil, fmt.Errorf("%w: %s is not a tensor of a layer of this model", ErrTensor, name)
		}
		base, ok := m.File.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("%w: %s is not in the model", ErrTensor, name)
		}
		if !sameDims(base.Dims, over.Tensors[i].Dims) {
			return nil, fmt.Errorf("%w: %s has shape %s, the model's is %s", ErrTensor, name, over.Tensors[i].Shape(), base.Shape())
		}
		byLayer[l] = append(byLayer[l], name)
	}
	if len(byLayer) == 0 {
		return nil, nil
	}
	build, ok := architectures[m.Config.Arch]
	if !ok {
		return nil, fmt.Errorf("%w: architecture %q", ErrUnsupported, m.Config.Arch)
	}
	// Build every layer again through the architecture's builder with a
	// loader that prefers over's tensors: shapes and types are checked
	// exactly as at load. The builders adjust the config they are given,
	// so they get a fresh one.
	c, err := ReadConfig(m.File)
	if err != nil {
		return nil, err
	}
	c.Vocab = m.Config.Vocab
	l := &loader{f: m.File, over: over}
	layers, err := build(l, &c)
	if err == nil {
		err = l.err
	}
	if err != nil {
		return nil, err
	}
	var out []*Variant
	for i := range layers {
		names, ok := byLayer[i]
		if !ok {
			continue
		}
		v := &Variant{layer: i, ly: layers[i], file: over, names: names}
		if _, isMoE := layers[i].ffn.(*moeFFN); isMoE {
			for _, n := range names {
				if strings.Contains(n, "_exps.") {
					v.moe = true
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// layerOf parses N from "blk.N.".
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	dot := strings.IndexByte(rest, '.')
	if dot <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:dot])
	return n, err == nil && n >= 0
}

func sameDims(a, b []int64) bool {
	for i := 0; i < max(len(a), len(b)); i++ {
		x, y := int64(1), int64(1)
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return false
		}
	}
	return true
}

// Precision chooses the weights of every layer for the sequences it is
// set on: a Variant, or nil for the model's own. It is immutable and may
// be set on any number of sequences.
type Precision struct {
	m      *Model
	name   string
	layers []*Variant
	lower  int
	// attach, if set, is told when a sequence takes (true) or drops
	// (false) this precision; it runs on the goroutine calling
	// SetPrecision.
	attach func(bool)
}

// NewPrecision makes a Precision from variants (any order, at most one per
// layer; layers without one use the base weights). attach, if not nil, is
// called with true each time a sequence takes the precision and with false
// each time one drops it (the adaptive planner counts users per layer to
// release base pages).
func (m *Model) NewPrecision(name string, variants []*Variant, attach func(bool)) (*Precision, error) {
	p := &Precision{m: m, name: name, layers: make([]*Variant, len(m.layers)), attach: attach}
	for _, v := range variants {
		if v == nil {
			continue
		}
		if v.layer < 0 || v.layer >= len(m.layers) {
			return nil, fmt.Errorf("model: precision %s: variant of layer %d, the model has %d", name, v.layer, len(m.layers))
		}
		if p.layers[v.layer] != nil {
			return nil, fmt.Errorf("model: precision %s: two variants of layer %d", name, v.layer)
		}
		p.layers[v.layer] = v
		p.lower++
	}
	return p, nil
}

// Name returns the name given to NewPrecision.
func (p *Precision) Name() string { return p.name }

// Variant returns layer l's variant, or nil where the base weights serve.
func (p *Precision) Variant(l int) *Variant { return p.layers[l] }

// SetPrecision makes the sequence's next Forwards use p (nil: the base
// weights). The cache keeps what earlier positions computed.
func (s *Sequence) SetPrecision(p *Precision) {
	if s.prec == p {
		return
	}
	if s.prec != nil && s.prec.attach != nil {
		s.prec.attach(false)
	}
	s.prec = p
	if p != nil && p.attach != nil {
		p.attach(true)
	}
}

// Precision returns the sequence's precision (nil: base weights).
func (s *Sequence) Precision() *Precision { return s.prec }

// runnerPrecision is a Runner's state for batches with per-sequence
// precision, grown once and reused.
type runnerPrecision struct {
	// experts computes a MoE variant's routed experts on the Runner's pool.
	experts map[*Variant]*experts.Local
	kinds   []*Variant // the weights rows of the current layer use (nil: base)
	rows    [][]int    // rows[k]: the batch rows using kinds[k]
	sub     Batch
}

// planned reports whether some sequence of b carries a precision with a
// lower layer, so Forward takes the grouped path.
func (r *Runner) planned(b *Batch) (bool, error) {
	planned := false
	for _, s := range b.Seq {
		if p := s.prec; p != nil && p.lower > 0 {
			if p.m != r.m {
				return false, errors.New("model: a sequence's precision was made for another model")
			}
			planned = true
		}
	}
	return planned, nil
}

// forwardPlanned runs layer l over b with each row's own weights.
func (r *Runner) forwardPlanned(l int, b *Batch) error {
	embd := r.m.Config.Embd
	n := len(b.Tokens)
	ly := &r.m.layers[l]
	r.prec.group(l, b, r.opt.MaxBatch)
	// Norm weights are never requantized, so every variant's equal the
	// base's; when one variant serves all rows its own are read, which
	// may come from its file, leaving the base's pages alone.
	if len(r.prec.kinds) == 1 && r.prec.kinds[0] != nil {
		ly = &r.prec.kinds[0].ly
	}
	r.normRows(ly.attnNorm, n)
	if err := r.prec.each(r, l, b, false); err != nil {
		return err
	}
	add(r.x[:n*embd], r.out[:n*embd])
	r.normRows(ly.ffnNorm, n)
	if err := r.prec.each(r, l, b, true); err != nil {
		return err
	}
	add(r.x[:n*embd], r.out[:n*embd])
	return nil
}

// group sorts the rows of b by the weights their sequence uses in layer l.
func (p *runnerPrecision) group(l int, b *Batch, maxBatch int) {
	p.kinds = p.kinds[:0]
	for i, s := range b.Seq {
		var v *Variant
		if s.prec != nil {
			v = s.prec.layers[l]
		}
		k := -1
		for j, w := range p.kinds {
			if w == v {
				k = j
				break
			}
		}
		if k < 0 {
			k = len(p.kinds)
			p.kinds = append(p.kinds, v)
			if len(p.rows) <= k {
				p.rows = append(p.rows, make([]int, 0, maxBatch))
			}
			p.rows[k] = p.rows[k][:0]
		}
		p.rows[k] = append(p.rows[k], i)
	}
}

// each runs the attention (ffn false) or FFN part of the layer for every
// group: the whole batch at once when one set of weights serves all rows,
// else each group's rows gathered into a sub-batch.
func (p *runnerPrecision) each(r *Runner, l int, b *Batch, ffn bool) error {
	if len(p.kinds) == 1 {
		return r.runPart(p.kinds[0], l, b, ffn)
	}
	embd := r.m.Config.Embd
	n := len(b.Tokens)
	xn, out := r.xn, r.out
	gx := r.buf("adaptive.xn", n*embd)
	gout := r.buf("adaptive.out", n*embd)
	sb := &p.sub
	if sb.Tokens == nil {
		sb.Tokens = make([]int32, 0, r.opt.MaxBatch)
		sb.Pos = make([]int, 0, r.opt.MaxBatch)
		sb.Seq = make([]*Sequence, 0, r.opt.MaxBatch)
	}
	for k, v := range p.kinds {
		sb.Reset()
		for j, i := range p.rows[k] {
			copy(gx[j*embd:(j+1)*embd], xn[i*embd:(i+1)*embd])
			sb.Tokens = append(sb.Tokens, b.Tokens[i])
			sb.Pos = append(sb.Pos, b.Pos[i])
			sb.Seq = append(sb.Seq, b.Seq[i])
		}
		r.xn, r.out = gx, gout
		err := r.runPart(v, l, sb, ffn)
		r.xn, r.out = xn, out
		if err != nil {
			return err
		}
		for j, i := range p.rows[k] {
			copy(out[i*embd:(i+1)*embd], gout[j*embd:(j+1)*embd])
		}
	}
	sb.Reset()
	clear(sb.Seq[:cap(sb.Seq)]) // hold no sequence past the Forward
	return nil
}

// runPart runs one half of layer l, with variant v's weights or the
// base's (v nil), over all rows of b.
func (r *Runner) runPart(v *Variant, l int, b *Batch, ffn bool) error {
	ly := &r.m.layers[l]
	if v != nil {
		ly = &v.ly
	}
	if !ffn {
		ly.attn.forward(r, l, b)
		return nil
	}
	if v == nil || !v.moe {
		return ly.ffn.forward(r, l, b)
	}
	be, err := r.prec.backend(r, v)
	if err != nil {
		return fmt.Errorf("model: layer %d: experts of precision variant: %w", l, err)
	}
	saved := r.experts
	r.experts = be
	err = ly.ffn.forward(r, l, b)
	r.experts = saved
	return err
}

// backend returns the in-process expert backend over v's file, made on
// first use and run on the Runner's pool. A variant's routed experts are
// always computed here, even when the Runner's own go to another backend.
func (p *runnerPrecision) backend(r *Runner, v *Variant) (*experts.Local, error) {
	if lc, ok := p.experts[v]; ok {
		return lc, nil
	}
	lc, err := experts.NewLocal(v.file, experts.LocalConfig{Experts: map[int][]int{v.layer: allExperts(r.m.Config.Experts)}, Pool: r.pool})
	if err != nil {
		return nil, err
	}
	if p.experts == nil {
		p.experts = map[*Variant]*experts.Local{}
	}
	p.experts[v] = lc
	return lc, nil
}

func allExperts(n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = i
	}
	return ids
}
