package experts

import (
	"fmt"
	"slices"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
	"github.com/inference-x/inference-x/kernels"
)

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
	hidden []float32         // per slot: gate, then silu(gate) * up, ff wide
	upv    []float32         // per slot: up, ff wide
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

// group lists the experts b's slots use in w.active, in increasing id
// order, and counts each one's slots.
func (w *localWork) group(ly *localLayer, b *Batch) {
	w.ly, w.b = ly, b
	w.count = grow(w.count, len(ly.held))
	clear(w.count)
	w.active = w.active[:0]
	for _, e := range b.Experts[:b.N*b.K] {
		if w.count[e] == 0 {
			w.active = append(w.active, e)
		}
		w.count[e]++
	}
	slices.Sort(w.active)
}

// prepare orders b's slots by expert, in the order of w.active (which the
// pager may have changed since group), and sizes the buffers. Each slot's
// result does not depend on that order.
func (w *localWork) prepare() error {
	ly, b := w.ly, w.b
	nSlots := b.N * b.K
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
	e0 := w.active[0] // every expert of a layer has the same types
	if err := w.xq[0].set(&ly.gate[e0], b.X, b.N, b.Embd, b.Q, b.QType); err != nil {
		return err
	}
	if err := w.xq[1].set(&ly.up[e0], b.X, b.N, b.Embd, b.Q, b.QType); err != nil {
		return err
	}
	w.hidden = grow(w.hidden, nSlots*ly.ff)
	w.upv = grow(w.upv, nSlots*ly.ff)
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

// gateUpTask computes hidden[s] = gate_e . x_i and upv[s] = up_e . x_i
// for units (active expert a, ff row r) = a*ff + r; quantTask applies
// the swiglu.
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
			w.hidden[s*ff+r] = w.xq[0].dot(g, r, i)
			w.upv[s*ff+r] = w.xq[1].dot(up, r, i)
		}
	}
}

// quantTask sets each slot's hidden row to silu(gate) * up as ggml's
// swiglu does (16-lane blocks, the row's ff%16 tail scalar) and quantizes
// it for the down product.
type quantTask struct{ w *localWork }

func (t quantTask) Do(lo, hi, _ int) {
	w := t.w
	h, ff := &w.hq, w.ly.ff
	for s := lo; s < hi; s++ {
		g, u := w.hidden[s*ff:(s+1)*ff], w.upv[s*ff:(s+1)*ff]
		for j := kernels.SwigluBlocks(g, u); j < ff; j++ {
			g[j] = ggmlfp.Silu(g[j]) * u[j]
		}
	}
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
