package experts

import (
	"fmt"
	"math"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// predictor guesses the experts of the next MoE layer while a layer runs:
// it feeds the layer's FFN input, rescaled from this layer's FFN norm to
// the next one's, to the next layer's router and takes each row's top
// experts (top: K when 0). The residual stream changes little between adjacent
// layers, so this is the next layer's choice, give or take the attention
// and FFN outputs added in between.
type predictor struct {
	top     int
	sigmoid bool
	routers []*router // by layer; nil without experts or router
	next    []int     // by layer: the next layer with a router, or -1
	ratio   [][]float32

	acts   kernels.Activations
	x      []float32
	logits []float32
	sel    []float32
	ids    []int32
	mark   []bool
}

// router is one MoE layer's gate.
type router struct {
	gate kernels.Matrix // experts x embd
	bias []float32      // exp_probs_b, or nil
	norm []float32      // ffn_norm weights, or nil
}

// newPredictor reads the routers of the layers that have experts. A
// layer without a readable router (ffn_gate_inp) is not predicted.
func newPredictor(f *gguf.File, layers []*localLayer, top int) (*predictor, error) {
	arch, _ := f.Architecture()
	gating, err := f.Int(arch + ".expert_gating_func")
	if err != nil {
		gating = 1 // softmax
	}
	p := &predictor{top: top, sigmoid: gating == 2,
		routers: make([]*router, len(layers)), next: make([]int, len(layers)), ratio: make([][]float32, len(layers))}
	for l, ly := range layers {
		if ly == nil {
			continue
		}
		t, ok := f.Tensor(fmt.Sprintf("blk.%d.ffn_gate_inp.weight", l))
		if !ok {
			continue
		}
		n := len(ly.held)
		gate, err := routerCopy(t, n, ly.embd)
		if err != nil {
			return nil, fmt.Errorf("experts: predictor: %s: %w", t.Name, err)
		}
		r := &router{gate: gate}
		if r.bias, err = vector(f, fmt.Sprintf("blk.%d.exp_probs_b.bias", l), n); err != nil {
			return nil, err
		}
		if r.norm, err = vector(f, fmt.Sprintf("blk.%d.ffn_norm.weight", l), ly.embd); err != nil {
			return nil, err
		}
		p.routers[l] = r
	}
	prev := -1
	for l := len(layers) - 1; l >= 0; l-- {
		p.next[l] = prev
		if p.routers[l] != nil {
			prev = l
		}
	}
	for l, r := range p.routers {
		if r == nil || p.next[l] < 0 {
			continue
		}
		nr := p.routers[p.next[l]]
		if r.norm == nil || nr.norm == nil {
			continue
		}
		q := make([]float32, len(r.norm))
		for j, w := range r.norm {
			if w != 0 {
				q[j] = nr.norm[j] / w
			}
		}
		p.ratio[l] = q
	}
	return p, nil
}

// routerCopy returns the router t (rows x cols) as a Q8_0 copy on the
// heap when its rows allow it, else a view of t: the prediction is a
// hint, and the integer dot of Q8_0 rows reads a quarter of the bytes of
// F32 ones and runs several times faster.
func routerCopy(t *gguf.Tensor, rows, cols int) (kernels.Matrix, error) {
	view, err := kernels.NewMatrix(t.Type, rows, cols, t.Data)
	if err != nil || t.Type == gguf.TypeQ8_0 {
		return view, err
	}
	rb, err := gguf.TypeQ8_0.RowBytes(cols)
	q8, lerr := kernels.Lookup(gguf.TypeQ8_0)
	if err != nil || lerr != nil || q8.Dot == nil {
		return view, nil
	}
	data := make([]byte, rows*rb)
	row := make([]float32, cols)
	for r := 0; r < rows; r++ {
		if err := kernels.DequantizeRow(t.Type, row, view.Row(r)); err != nil {
			return view, nil
		}
		q8.Quantize(data[r*rb:(r+1)*rb], row, nil)
	}
	return kernels.NewMatrix(gguf.TypeQ8_0, rows, cols, data)
}

// vector reads a small tensor as float32s; a missing tensor is nil.
func vector(f *gguf.File, name string, n int) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, nil
	}
	if t.Elements() != int64(n) {
		return nil, fmt.Errorf("experts: predictor: %s has %d values, want %d", name, t.Elements(), n)
	}
	out := make([]float32, n)
	if err := kernels.DequantizeRow(t.Type, out, t.Data); err != nil {
		return nil, fmt.Errorf("experts: predictor: %s: %w", name, err)
	}
	return out, nil
}

// predict returns the next MoE layer after layer and the union of its
// predicted experts for b's rows (valid until the next call), or -1.
func (p *predictor) predict(pool *kernels.Pool, layer int, b *Batch) (int, []int32) {
	if layer >= len(p.next) || p.routers[layer] == nil || p.next[layer] < 0 {
		return -1, nil
	}
	nl := p.next[layer]
	r := p.routers[nl]
	nExp, embd := r.gate.Rows, b.Embd
	if r.gate.Cols != embd {
		return -1, nil
	}
	x := b.X[:b.N*embd]
	if q := p.ratio[layer]; q != nil {
		p.x = grow(p.x, len(x))
		for i := 0; i < b.N; i++ {
			row, dst := x[i*embd:(i+1)*embd], p.x[i*embd:(i+1)*embd]
			for j, v := range row {
				dst[j] = v * q[j]
			}
		}
		x = p.x
	}
	p.logits = grow(p.logits, b.N*nExp)
	p.acts.Reset(x, b.N, embd)
	pool.MatMul(p.logits, &r.gate, &p.acts)

	p.sel = grow(p.sel, nExp)
	p.mark = grow(p.mark, nExp)
	clear(p.mark)
	p.ids = p.ids[:0]
	top := b.K
	if p.top > 0 {
		top = p.top
	}
	top = min(top, nExp)
	for i := 0; i < b.N; i++ {
		p.scores(p.logits[i*nExp:(i+1)*nExp], r.bias)
		for range top {
			e := argmax(p.sel)
			p.sel[e] = float32(math.Inf(-1))
			if !p.mark[e] {
				p.mark[e] = true
				p.ids = append(p.ids, int32(e))
			}
		}
	}
	return nl, p.ids
}

// scores fills p.sel with the selection scores of one row of router
// logits: the gate probabilities plus the selection bias when there is
// one, else the logits (same order).
func (p *predictor) scores(logits, bias []float32) {
	s := p.sel[:len(logits)]
	switch {
	case bias == nil:
		copy(s, logits)
		return
	case p.sigmoid:
		for j, v := range logits {
			s[j] = 1 / (1 + float32(math.Exp(float64(-v))))
		}
	default:
		mx := float32(math.Inf(-1))
		for _, v := range logits {
			mx = max(mx, v)
		}
		var sum float32
		for j, v := range logits {
			s[j] = float32(math.Exp(float64(v - mx)))
			sum += s[j]
		}
		for j := range s {
			s[j] /= sum
		}
	}
	for j := range s {
		s[j] += bias[j]
	}
}

// argmax returns the index of the largest value (the lowest among equals).
func argmax(s []float32) int {
	best := 0
	for j, v := range s {
		if v > s[best] {
			best = j
		}
	}
	return best
}
