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
	ly   *localLayer
	b    *Batch
	pool *kernels.Pool

	// Slots (row i, choice k) = i*K+k grouped by expert: the slots of
	// active[a] are slots[start[a]:start[a+1]], and pos[s] is the
	// position of slot s in that order. Every per-slot buffer below is in
	// grouped order, so each expert's rows are contiguous: one segment of
	// the activations per active expert.
	active []int32
	start  []int
	slots  []int
	pos    []int
	count  []int // per expert id

	xg     []float32           // input rows by position, when the products take f32 or quantize here
	xa     kernels.Activations // the gate/up activations, one segment per active expert
	hidden []float32           // by position: gate, then silu(gate) * up, ff wide
	upv    []float32           // by position: up, ff wide
	ha     kernels.Activations // the hidden rows for the down product, segmented likewise
	y      []float32           // by position: the expert's output, embd wide

	gateUp gateUpTask
	swiglu swigluTask
	down   downTask
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

// checkQuant reports an error when m's activations (rows of cols) cannot
// be quantized to its companion type.
func checkQuant(m *kernels.Matrix, cols int) error {
	if t, ok := needsQuant(m); ok && kernels.ActivationBytes(t, cols) == 0 {
		return fmt.Errorf("experts: rows of %d cannot be quantized to %v", cols, t)
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
// pager may have changed since group), sizes the buffers, and gathers and
// prepares the gate/up activations. Each slot's result does not depend on
// that order.
func (w *localWork) prepare(pool *kernels.Pool) error {
	ly, b := w.ly, w.b
	w.pool = pool
	nSlots := b.N * b.K
	w.start = grow(w.start, len(w.active)+1)
	w.start[0] = 0
	for a, e := range w.active {
		w.start[a+1] = w.start[a] + w.count[e]
		w.count[e] = w.start[a] // now the next free position of expert e
	}
	w.slots = grow(w.slots, nSlots)
	w.pos = grow(w.pos, nSlots)
	for s, e := range b.Experts[:nSlots] {
		w.slots[w.count[e]] = s
		w.pos[s] = w.count[e]
		w.count[e]++
	}
	e0 := w.active[0] // every expert of a layer has the same types
	g, u, d := &ly.gate[e0], &ly.up[e0], &ly.down[e0]
	for _, c := range []struct {
		m    *kernels.Matrix
		cols int
	}{{g, b.Embd}, {u, b.Embd}, {d, ly.ff}} {
		if err := checkQuant(c.m, c.cols); err != nil {
			return err
		}
	}
	gt, gq := needsQuant(g)
	ut, uq := needsQuant(u)
	if gq && uq && gt == ut && b.Q != nil && b.QType == gt {
		// The caller's quantized rows, gathered: the bytes the local
		// quantizer would make (Batch.Q).
		rb := kernels.ActivationBytes(gt, b.Embd)
		q := w.xa.QuantizedRows(gt, nSlots, b.Embd)
		for p, s := range w.slots[:nSlots] {
			i := s / b.K
			copy(q[p*rb:(p+1)*rb], b.Q[i*rb:(i+1)*rb])
		}
	} else {
		w.xg = grow(w.xg, nSlots*b.Embd)
		for p, s := range w.slots[:nSlots] {
			i := s / b.K
			copy(w.xg[p*b.Embd:(p+1)*b.Embd], b.X[i*b.Embd:(i+1)*b.Embd])
		}
		w.xa.Reset(w.xg, nSlots, b.Embd)
	}
	w.xa.SetSegments(w.start)
	pool.Prepare(&w.xa, g)
	pool.Prepare(&w.xa, u)
	w.hidden = grow(w.hidden, nSlots*ly.ff)
	w.upv = grow(w.upv, nSlots*ly.ff)
	w.y = grow(w.y, nSlots*ly.embd)
	w.gateUp.w, w.swiglu.w, w.down.w = w, w, w
	return nil
}

// prepareDown sets up the down product's activations: the hidden rows,
// one segment per active expert.
func (w *localWork) prepareDown() {
	n := w.b.N * w.b.K
	w.ha.Reset(w.hidden, n, w.ly.ff)
	w.ha.SetSegments(w.start)
	w.pool.Prepare(&w.ha, &w.ly.down[w.active[0]])
}

// release drops the references to the caller's batch.
func (w *localWork) release() {
	w.b = nil
	w.xa.Reset(nil, 0, 0)
	w.ha.Reset(nil, 0, 0)
}

// tileRows is the unit of the product tasks: a block of weight rows of
// one expert.
const tileRows = 16

// gateUpTask computes hidden[p] = gate_e . x_p and upv[p] = up_e . x_p
// for units (active expert a, block of tileRows ff rows); swigluTask
// applies the swiglu.
type gateUpTask struct{ w *localWork }

func (t gateUpTask) Do(lo, hi, worker int) {
	w := t.w
	ly, ff := w.ly, w.ly.ff
	forRuns(lo, hi, ff, func(a, r0, r1 int) {
		e, p0 := w.active[a], w.start[a]
		w.pool.RowsProduct(worker, w.hidden[p0*ff+r0:], ff, &ly.gate[e], r0, r1, &w.xa, a)
		w.pool.RowsProduct(worker, w.upv[p0*ff+r0:], ff, &ly.up[e], r0, r1, &w.xa, a)
	})
}

// forRuns calls f(a, r0, r1) for the units [lo, hi) (active expert a,
// block of tileRows of rows rows) merged into one row range per expert:
// one kernel call covers many blocks, so its weight streams are long
// enough for prefetching (decode reads each row once).
func forRuns(lo, hi, rows int, f func(a, r0, r1 int)) {
	nrb := (rows + tileRows - 1) / tileRows
	for u := lo; u < hi; {
		a := u / nrb
		end := min(hi, (a+1)*nrb)
		f(a, (u-a*nrb)*tileRows, min((end-a*nrb)*tileRows, rows))
		u = end
	}
}

// swigluTask sets each position's hidden row to silu(gate) * up as ggml's
// swiglu does (16-lane blocks, the row's ff%16 tail scalar).
type swigluTask struct{ w *localWork }

func (t swigluTask) Do(lo, hi, _ int) {
	w := t.w
	ff := w.ly.ff
	for p := lo; p < hi; p++ {
		g, u := w.hidden[p*ff:(p+1)*ff], w.upv[p*ff:(p+1)*ff]
		for j := kernels.SwigluBlocks(g, u); j < ff; j++ {
			g[j] = ggmlfp.Silu(g[j]) * u[j]
		}
	}
}

// downTask computes y[p] = down_e . hidden[p] for units (active expert a,
// block of tileRows embd rows).
type downTask struct{ w *localWork }

func (t downTask) Do(lo, hi, worker int) {
	w := t.w
	ly, embd := w.ly, w.ly.embd
	forRuns(lo, hi, embd, func(a, r0, r1 int) {
		w.pool.RowsProduct(worker, w.y[w.start[a]*embd+r0:], embd, &ly.down[w.active[a]], r0, r1, &w.ha, a)
	})
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
			p := w.pos[s]
			y := w.y[p*embd : (p+1)*embd]
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
