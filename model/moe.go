package model

import (
	"fmt"
	"math"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// moeFFN is a mixture-of-experts feed-forward block: a router picks K of
// the layer's experts per token, experts.Backend computes their weighted
// sum, and optional shared experts run on every token.
type moeFFN struct {
	gateInp *kernels.Matrix // router: embd -> experts
	route   routing
	// qType is the companion type the gate/up expert weights quantize
	// activations to (the batch's Q); quantized is false for f32 dots.
	qType     gguf.Type
	quantized bool

	shared     *denseFFN       // shared expert(s), or nil
	sharedGate *kernels.Matrix // qwen2moe: one row, sigmoid-gates the shared expert; or nil
}

// routing is how router logits become (expert, weight) pairs, as
// llama.cpp's build_moe_ffn does it.
type routing struct {
	experts, used int
	gating        GatingFunc
	bias          []float32 // exp_probs_b: added for selection only; or nil
	groups        int       // expert groups (>1: group-limited routing)
	groupsUsed    int
	norm          bool    // renormalise the selected weights to sum 1
	scale         float32 // multiply the weights (0 or 1: none)
}

// loadMoE reads layer i's router and checks its expert tensors, so a bad
// file fails at load with the tensor's name (the backend views the
// expert tensors on its side); architectures add shared experts.
func loadMoE(l *loader, c *Config, i int, route routing) *moeFFN {
	f := &moeFFN{
		gateInp: l.matrix(blk(i, "ffn_gate_inp.weight"), c.Embd, c.Experts),
		route:   route,
	}
	gate := l.tensor(blk(i, "ffn_gate_exps.weight"), false, c.Embd, c.ExpertFF, c.Experts)
	up := l.tensor(blk(i, "ffn_up_exps.weight"), false, c.Embd, c.ExpertFF, c.Experts)
	l.tensor(blk(i, "ffn_down_exps.weight"), false, c.ExpertFF, c.Embd, c.Experts)
	if gate != nil && up != nil {
		gf, err := kernels.Lookup(gate.Type)
		if err != nil {
			l.fail(fmt.Errorf("%w: tensor %s: %v", ErrTensor, gate.Name, err))
			return f
		}
		if _, err := kernels.Lookup(up.Type); err != nil {
			l.fail(fmt.Errorf("%w: tensor %s: %v", ErrTensor, up.Name, err))
			return f
		}
		// The batch carries one quantized copy: the gate's. A backend
		// quantizes again for an up tensor of another companion type.
		f.qType, f.quantized = gf.VecDot, gf.VecDot != gguf.TypeF32 && gf.Dot != nil
	}
	return f
}

// loadSharedExperts reads ffn_{gate,up,down}_shexp of layer i (ff wide).
func loadSharedExperts(l *loader, i, embd, ff int) *denseFFN {
	return &denseFFN{
		gate: l.matrix(blk(i, "ffn_gate_shexp.weight"), embd, ff),
		up:   l.matrix(blk(i, "ffn_up_shexp.weight"), embd, ff),
		down: l.matrix(blk(i, "ffn_down_shexp.weight"), ff, embd),
	}
}

func (f *moeFFN) forward(r *Runner, l int, b *Batch) error {
	n := len(b.Tokens)
	embd := r.m.Config.Embd
	nExp, k := f.route.experts, f.route.used
	xn := r.xn[:n*embd]

	logits := r.buf("moe.logits", n*nExp)
	r.acts.Reset(xn, n, embd)
	r.pool.MatMul(logits, f.gateInp, &r.acts)

	if cap(r.expertIDs) < n*k {
		r.expertIDs = make([]int32, n*k)
	}
	ids := r.expertIDs[:n*k]
	weights := r.buf("moe.weights", n*k)
	sel := r.buf("moe.select", nExp+f.route.groups)
	counts := r.expertCounts[l]
	for i := 0; i < n; i++ {
		row := ids[i*k : (i+1)*k]
		f.route.choose(logits[i*nExp:(i+1)*nExp], sel, row, weights[i*k:(i+1)*k])
		if counts != nil {
			for _, e := range row {
				counts[e]++
			}
		}
	}

	eb := &r.expertBatch
	*eb = experts.Batch{N: n, K: k, Embd: embd, X: xn, Experts: ids, Weights: weights}
	if f.quantized {
		eb.Q, eb.QType = r.acts.Quantized(f.qType), f.qType
	}
	backend := r.experts
	if backend == nil {
		return fmt.Errorf("model: layer %d: no expert backend: %w", l, r.expertsErr)
	}
	err := backend.Forward(r.ctx, l, eb, r.out[:n*embd])
	eb.X, eb.Q, eb.Experts, eb.Weights = nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("model: layer %d experts: %w", l, err)
	}

	if f.shared == nil {
		return nil
	}
	sh := r.buf("moe.shared", n*embd)
	f.shared.apply(r, n, sh)
	if f.sharedGate != nil {
		g := r.buf("moe.shared.gate", n)
		r.matmul(g, f.sharedGate, xn, n)
		for i := 0; i < n; i++ {
			// ggml_div(ggml_silu(x), x): the sigmoid as qwen2moe writes it.
			gi := silu(g[i]) / g[i]
			row := sh[i*embd : (i+1)*embd]
			for j := range row {
				row[j] *= gi
			}
		}
	}
	add(r.out[:n*embd], sh)
	return nil
}

// apply computes the FFN of the first n rows of r.xn into dst.
func (f *denseFFN) apply(r *Runner, n int, dst []float32) {
	ff := f.gate.Rows
	g := r.buf("ffn.gate", n*ff)
	u := r.buf("ffn.up", n*ff)
	r.acts.Reset(r.xn, n, f.gate.Cols)
	r.pool.MatMul(g, f.gate, &r.acts)
	r.pool.MatMul(u, f.up, &r.acts)
	swigluRows(g, u, ff)
	r.matmul(dst, f.down, g, n)
}

// choose picks the row's experts into ids and their weights into w from
// the router logits, using sel (len experts+groups) as scratch; it
// overwrites logits with the gate probabilities.
func (rt *routing) choose(logits, sel []float32, ids []int32, w []float32) {
	probs := logits
	switch rt.gating {
	case GatingSigmoid:
		for i, v := range probs {
			probs[i] = sigmoid(v)
		}
	default:
		softmaxInPlace(probs)
	}
	s := sel[:rt.experts]
	copy(s, probs)
	if rt.bias != nil {
		add(s, rt.bias)
	}
	if rt.groups > 1 {
		rt.maskGroups(s, sel[rt.experts:rt.experts+rt.groups])
	}
	for k := range ids {
		best := pickMax(s)
		ids[k] = int32(best)
		w[k] = probs[best]
		s[best] = float32(math.NaN()) // taken
	}
	if rt.norm {
		var sum float64
		for _, v := range w {
			sum += float64(v)
		}
		// llama.cpp clamps the sum to the smallest normal F16.
		d := max(float32(sum), 6.103515625e-5)
		for i := range w {
			w[i] /= d
		}
	}
	if rt.scale != 0 && rt.scale != 1 {
		for i := range w {
			w[i] *= rt.scale
		}
	}
}

// maskGroups keeps the groupsUsed expert groups whose two best selection
// scores sum highest and sets the other groups' scores to -inf
// (DeepSeek-V3's group-limited routing).
func (rt *routing) maskGroups(s, scores []float32) {
	per := len(s) / rt.groups
	for g := range scores {
		a, b := float32(math.Inf(-1)), float32(math.Inf(-1))
		for _, v := range s[g*per : (g+1)*per] {
			if v > a {
				a, b = v, a
			} else if v > b {
				b = v
			}
		}
		scores[g] = a + b
	}
	// Take the groupsUsed best groups; mark them by NaN.
	for range rt.groupsUsed {
		scores[pickMax(scores)] = float32(math.NaN())
	}
	for g, v := range scores {
		if v == v { // not chosen
			clear32(s[g*per:(g+1)*per], float32(math.Inf(-1)))
		}
	}
}

func clear32(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}

// pickMax returns the index of the largest value of s that is not NaN
// (the lowest index among equals), or 0 if all are NaN.
func pickMax(s []float32) int {
	best := -1
	for i, v := range s {
		if v != v {
			continue
		}
		if best < 0 || v > s[best] {
			best = i
		}
	}
	return max(best, 0)
}

// sigmoid is ggml's 1 / (1 + exp(-x)).
func sigmoid(x float32) float32 { return 1 / (1 + exp32(-x)) }
