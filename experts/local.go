package experts

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
	"github.com/inference-x/inference-x/kernels"
)

// LocalConfig selects what a Local holds and how it computes.
type LocalConfig struct {
	// Experts limits the experts held: layer -> expert ids. Nil holds
	// every expert of every layer that has expert tensors; a listed layer
	// with an empty slice holds none of its experts.
	Experts map[int][]int
	// Pool runs the matrix products. Nil: NewLocal starts a pool of
	// Threads workers (0: one per CPU), which Close stops. A pool passed
	// in stays the caller's: Forward drives it, so the caller must not run
	// other work on it while a Forward is in progress (a model Runner
	// passes its own pool and calls Forward from the goroutine that drives
	// it).
	Pool    *kernels.Pool
	Threads int
}

// Local computes routed experts in-process over the expert tensors of a
// mapped GGUF file (blk.L.ffn_{gate,up,down}_exps.weight: one
// [ff x embd] gate and up matrix and one [embd x ff] down matrix per
// expert, viewed in place, never copied).
//
// Forward groups a batch's rows by expert, so each expert's weights are
// read once per batch, and computes from the batch's quantized rows (Q)
// where the weights take quantized activations, so a remote node fed the
// same bytes gets the same bits. It is safe for concurrent use; calls are
// serialised on the Local's pool and scratch, and a steady stream of
// batches of the same size allocates nothing.
type Local struct {
	layers []*localLayer // by layer index; nil where no expert is held

	mu      sync.Mutex
	pool    *kernels.Pool
	ownPool bool
	work    localWork
}

// localLayer is one MoE layer's experts.
type localLayer struct {
	embd, ff int
	gate     []kernels.Matrix // by expert id; zero Matrix when not held
	up       []kernels.Matrix
	down     []kernels.Matrix
	held     []bool
}

// expertTensors are the names of a layer's expert tensors.
func expertTensors(layer int) (gate, up, down string) {
	p := fmt.Sprintf("blk.%d.", layer)
	return p + "ffn_gate_exps.weight", p + "ffn_up_exps.weight", p + "ffn_down_exps.weight"
}

// NewLocal indexes the expert tensors of f that cfg selects. It checks
// that each layer's gate, up and down tensors exist and agree in shape
// ([embd, ff, n], [embd, ff, n], [ff, embd, n]), naming the tensor when
// one does not.
func NewLocal(f *gguf.File, cfg LocalConfig) (*Local, error) {
	nLayers := 0
	for i := range f.Tensors {
		var l int
		var rest string
		if n, _ := fmt.Sscanf(f.Tensors[i].Name, "blk.%d.%s", &l, &rest); n == 2 && l >= nLayers {
			nLayers = l + 1
		}
	}
	lc := &Local{layers: make([]*localLayer, nLayers)}
	for l := 0; l < nLayers; l++ {
		want, listed := cfg.Experts[l]
		if cfg.Experts != nil && !listed {
			continue
		}
		gn, un, dn := expertTensors(l)
		gt, okG := f.Tensor(gn)
		ut, okU := f.Tensor(un)
		dt, okD := f.Tensor(dn)
		if !okG && !okU && !okD {
			if listed {
				return nil, fmt.Errorf("%w: layer %d has no expert tensors (%s)", ErrUnknownExpert, l, gn)
			}
			continue
		}
		ly, err := newLocalLayer(gt, ut, dt, gn, un, dn)
		if err != nil {
			return nil, err
		}
		n := len(ly.held)
		ids := want
		if cfg.Experts == nil {
			ids = nil
			for e := 0; e < n; e++ {
				ids = append(ids, e)
			}
		}
		for _, e := range ids {
			if e < 0 || e >= n {
				return nil, fmt.Errorf("%w: expert %d of layer %d (it has %d)", ErrUnknownExpert, e, l, n)
			}
			if err := ly.view(e, gt, ut, dt); err != nil {
				return nil, err
			}
		}
		lc.layers[l] = ly
	}
	if cfg.Pool != nil {
		lc.pool = cfg.Pool
	} else {
		lc.pool, lc.ownPool = kernels.NewPool(cfg.Threads), true
	}
	return lc, nil
}

func newLocalLayer(gt, ut, dt *gguf.Tensor, gn, un, dn string) (*localLayer, error) {
	for _, c := range []struct {
		t    *gguf.Tensor
		name string
	}{{gt, gn}, {ut, un}, {dt, dn}} {
		if c.t == nil {
			return nil, fmt.Errorf("experts: missing tensor %s", c.name)
		}
		if len(c.t.Dims) != 3 {
			return nil, fmt.Errorf("experts: tensor %s has shape %s, want 3 dimensions", c.name, c.t.Shape())
		}
	}
	embd, ff, n := gt.Dims[0], gt.Dims[1], gt.Dims[2]
	if !slices.Equal(ut.Dims, gt.Dims) {
		return nil, fmt.Errorf("experts: tensor %s has shape %s, want %s like %s", un, ut.Shape(), gt.Shape(), gn)
	}
	if dt.Dims[0] != ff || dt.Dims[1] != embd || dt.Dims[2] != n {
		return nil, fmt.Errorf("experts: tensor %s has shape %s, want [%d, %d, %d]", dn, dt.Shape(), ff, embd, n)
	}
	return &localLayer{
		embd: int(embd), ff: int(ff),
		gate: make([]kernels.Matrix, n), up: make([]kernels.Matrix, n), down: make([]kernels.Matrix, n),
		held: make([]bool, n),
	}, nil
}

// view makes expert e's matrices: slice e of each 3-D tensor.
func (ly *localLayer) view(e int, gt, ut, dt *gguf.Tensor) error {
	var err error
	mat := func(t *gguf.Tensor, rows, cols int) kernels.Matrix {
		if err != nil {
			return kernels.Matrix{}
		}
		size := len(t.Data) / int(t.Dims[2])
		m, merr := kernels.NewMatrix(t.Type, rows, cols, t.Data[e*size:(e+1)*size])
		if merr != nil {
			err = fmt.Errorf("experts: tensor %s: %w", t.Name, merr)
		}
		return m
	}
	ly.gate[e] = mat(gt, ly.ff, ly.embd)
	ly.up[e] = mat(ut, ly.ff, ly.embd)
	ly.down[e] = mat(dt, ly.embd, ly.ff)
	ly.held[e] = err == nil
	return err
}

// Close stops the pool NewLocal started (not a pool passed in).
func (lc *Local) Close() {
	if lc.ownPool {
		lc.pool.Close()
	}
}

// Holds reports whether the Local holds expert e of layer l.
func (lc *Local) Holds(l, e int) bool {
	if l < 0 || l >= len(lc.layers) || lc.layers[l] == nil {
		return false
	}
	ly := lc.layers[l]
	return e >= 0 && e < len(ly.held) && ly.held[e]
}

// Forward implements Backend.
func (lc *Local) Forward(ctx context.Context, layer int, b *Batch, out []float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if layer < 0 || layer >= len(lc.layers) || lc.layers[layer] == nil {
		return fmt.Errorf("%w: layer %d holds no experts here", ErrUnknownExpert, layer)
	}
	ly := lc.layers[layer]
	if err := ly.check(layer, b, out); err != nil {
		return err
	}
	if b.N == 0 {
		return nil
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	w := &lc.work
	if err := w.prepare(ly, b); err != nil {
		return err
	}
	// gate and up, then SwiGLU: one unit per (active expert, ff row).
	lc.pool.Run(len(w.active)*ly.ff, 4, &w.gateUp)
	if err := ctx.Err(); err != nil {
		return err
	}
	// The down projection's activations, quantized per slot.
	lc.pool.Run(b.N*b.K, 1, &w.quantH)
	lc.pool.Run(len(w.active)*ly.embd, 4, &w.down)
	w.combine(out[:b.N*b.Embd])
	w.release()
	return nil
}

// check validates a batch against the layer.
func (ly *localLayer) check(layer int, b *Batch, out []float32) error {
	switch {
	case b.N < 0 || b.K <= 0:
		return fmt.Errorf("experts: batch of %d rows with %d experts each", b.N, b.K)
	case b.Embd != ly.embd:
		return fmt.Errorf("experts: layer %d rows are %d wide, batch has %d", layer, ly.embd, b.Embd)
	case len(b.X) < b.N*b.Embd || len(out) < b.N*b.Embd:
		return fmt.Errorf("experts: batch of %d rows of %d needs %d values (x %d, out %d)", b.N, b.Embd, b.N*b.Embd, len(b.X), len(out))
	case len(b.Experts) < b.N*b.K || len(b.Weights) < b.N*b.K:
		return fmt.Errorf("experts: batch of %d rows x %d experts has %d expert ids and %d weights", b.N, b.K, len(b.Experts), len(b.Weights))
	}
	if b.Q != nil {
		rb := kernels.ActivationBytes(b.QType, b.Embd)
		if rb == 0 || len(b.Q) != b.N*rb {
			return fmt.Errorf("experts: quantized rows: %d bytes of %v for %d rows of %d", len(b.Q), b.QType, b.N, b.Embd)
		}
	}
	for _, e := range b.Experts[:b.N*b.K] {
		if e < 0 || int(e) >= len(ly.held) || !ly.held[e] {
			return fmt.Errorf("%w: expert %d of layer %d", ErrUnknownExpert, e, layer)
		}
	}
	return nil
}

// localWork is the scratch of one Forward, grown to the largest batch
// seen and reused.
type localWork struct {
	ly *localLayer
	b  *Batch

	// Slots (row i, choice k) = i*K+k grouped by expert: the slots of
	// active[a] are slots[start[a]:start[a+1]].
	active []int32
	start  []int
	slots  []int
	count  []int // per expert id

	// Activations of the gate/up products: per companion type, the rows
	// quantized (or X itself for f32 dots).
	xq     [2]activationRows // gate, up
	hidden []float32         // per slot: silu(gate) * up, ff wide
	hq     activationRows    // hidden rows for the down product
	y      []float32         // per slot: the expert's output, embd wide

	gateUp gateUpTask
	quantH quantTask
	down   downTask
}

// activationRows are rows in the form a weight matrix's dot takes: f32
// (q nil) or quantized to the companion type (row bytes each).
type activationRows struct {
	x    []float32
	cols int
	q    []byte
	row  int
	typ  gguf.Type
	own  []byte // backing store when quantized here
}

// needsQuant reports whether m's dot runs on quantized activations and
// which type.
func needsQuant(m *kernels.Matrix) (gguf.Type, bool) {
	f := m.Format()
	if f.VecDot == gguf.TypeF32 || f.Dot == nil {
		return 0, false
	}
	return f.VecDot, true
}

// dot returns row r of m times activation row i.
func (a *activationRows) dot(m *kernels.Matrix, r, i int) float32 {
	w := m.Data[r*m.RowBytes : (r+1)*m.RowBytes]
	if a.q == nil {
		return m.Format().DotF32(w, a.x[i*a.cols:(i+1)*a.cols])
	}
	return m.Format().Dot(m.Cols, w, a.q[i*a.row:(i+1)*a.row])
}

// set prepares n rows of x for products with matrices like m, reusing
// the caller's quantized rows q when they are of the right type.
func (a *activationRows) set(m *kernels.Matrix, x []float32, n, cols int, q []byte, qt gguf.Type) error {
	a.x, a.cols, a.q = x, cols, nil
	t, ok := needsQuant(m)
	if !ok {
		return nil
	}
	rb := kernels.ActivationBytes(t, cols)
	if rb == 0 {
		return fmt.Errorf("experts: rows of %d cannot be quantized to %v", cols, t)
	}
	a.typ, a.row = t, rb
	if q != nil && qt == t {
		a.q = q[:n*rb]
		return nil
	}
	if cap(a.own) < n*rb {
		a.own = make([]byte, n*rb)
	}
	a.q = a.own[:n*rb]
	for i := 0; i < n; i++ {
		if err := kernels.QuantizeActivation(t, a.q[i*rb:(i+1)*rb], x[i*cols:(i+1)*cols]); err != nil {
			return err
		}
	}
	return nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// prepare groups b's slots by expert and sizes the buffers.
func (w *localWork) prepare(ly *localLayer, b *Batch) error {
	w.ly, w.b = ly, b
	nExp := len(ly.held)
	nSlots := b.N * b.K
	w.count = grow(w.count, nExp)
	clear(w.count)
	w.active = w.active[:0]
	for _, e := range b.Experts[:nSlots] {
		if w.count[e] == 0 {
			w.active = append(w.active, e)
		}
		w.count[e]++
	}
	slices.Sort(w.active)
	w.start = grow(w.start, len(w.active)+1)
	w.start[0] = 0
	for a, e := range w.active {
		w.start[a+1] = w.start[a] + w.count[e]
		w.count[e] = w.start[a] // now the next free position of expert e
	}
	w.slots = grow(w.slots, nSlots)
	for s, e := range b.Experts[:nSlots] {
		w.slots[w.count[e]] = s
		w.count[e]++
	}
	e0 := w.active[0]
	if err := w.xq[0].set(&ly.gate[e0], b.X, b.N, b.Embd, b.Q, b.QType); err != nil {
		return err
	}
	if err := w.xq[1].set(&ly.up[e0], b.X, b.N, b.Embd, b.Q, b.QType); err != nil {
		return err
	}
	w.hidden = grow(w.hidden, nSlots*ly.ff)
	w.y = grow(w.y, nSlots*ly.embd)
	h := &w.hq
	h.x, h.cols, h.q = w.hidden, ly.ff, nil
	if t, ok := needsQuant(&ly.down[e0]); ok {
		rb := kernels.ActivationBytes(t, ly.ff)
		if rb == 0 {
			return fmt.Errorf("experts: rows of %d cannot be quantized to %v", ly.ff, t)
		}
		h.typ, h.row = t, rb
		h.own = grow(h.own, nSlots*rb)
		h.q = h.own
	}
	w.gateUp.w, w.quantH.w, w.down.w = w, w, w
	return nil
}

// release drops the references to the caller's batch.
func (w *localWork) release() {
	w.b = nil
	w.xq[0].x, w.xq[0].q = nil, nil
	w.xq[1].x, w.xq[1].q = nil, nil
}

// gateUpTask computes hidden[s] = silu(gate_e . x_i) * (up_e . x_i) for
// units (active expert a, ff row r) = a*ff + r.
type gateUpTask struct{ w *localWork }

func (t gateUpTask) Do(lo, hi, _ int) {
	w := t.w
	ly, k, ff := w.ly, w.b.K, w.ly.ff
	for u := lo; u < hi; u++ {
		a, r := u/ff, u%ff
		e := w.active[a]
		g, up := &ly.gate[e], &ly.up[e]
		for _, s := range w.slots[w.start[a]:w.start[a+1]] {
			i := s / k
			gv := w.xq[0].dot(g, r, i)
			uv := w.xq[1].dot(up, r, i)
			// ggml's swiglu: vector exp except the row's ff%16 tail.
			w.hidden[s*ff+r] = ggmlfp.SiluInRow(gv, r, ff) * uv
		}
	}
}

// quantTask quantizes hidden rows for the down product.
type quantTask struct{ w *localWork }

func (t quantTask) Do(lo, hi, _ int) {
	h := &t.w.hq
	if h.q == nil {
		return
	}
	for s := lo; s < hi; s++ {
		// Lengths are checked in prepare; QuantizeActivation cannot fail.
		_ = kernels.QuantizeActivation(h.typ, h.q[s*h.row:(s+1)*h.row], h.x[s*h.cols:(s+1)*h.cols])
	}
}

// downTask computes y[s] = down_e . hidden[s] for units (active expert a,
// embd row r) = a*embd + r.
type downTask struct{ w *localWork }

func (t downTask) Do(lo, hi, _ int) {
	w := t.w
	ly, embd := w.ly, w.ly.embd
	for u := lo; u < hi; u++ {
		a, r := u/embd, u%embd
		d := &ly.down[w.active[a]]
		for _, s := range w.slots[w.start[a]:w.start[a+1]] {
			w.y[s*embd+r] = w.hq.dot(d, r, s)
		}
	}
}

// combine writes out[i] = sum over k = 0..K-1 of weight_ik * y[i*K+k],
// each product rounded before the sum, as ggml's mul then add chain does.
func (w *localWork) combine(out []float32) {
	b, embd := w.b, w.ly.embd
	for i := 0; i < b.N; i++ {
		o := out[i*embd : (i+1)*embd]
		for k := 0; k < b.K; k++ {
			s := i*b.K + k
			wt := b.Weights[s]
			y := w.y[s*embd : (s+1)*embd]
			if k == 0 {
				for j := range o {
					o[j] = y[j] * wt
				}
				continue
			}
			for j := range o {
				o[j] += float32(y[j] * wt) // rounded product, no fused multiply-add
			}
		}
	}
}
