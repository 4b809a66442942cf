package model

import "github.com/inference-x/inference-x/kernels"

// denseFFN is the SwiGLU feed-forward block: down(silu(gate(x)) * up(x)).
type denseFFN struct {
	gate, up, down *kernels.Matrix
}

func (f *denseFFN) forward(r *Runner, _ int, b *Batch) error {
	n := len(b.Tokens)
	ff := f.gate.Rows
	g := r.buf("ffn.gate", n*ff)
	u := r.buf("ffn.up", n*ff)
	r.acts.Reset(r.xn, n, f.gate.Cols)
	r.pool.MatMul(g, f.gate, &r.acts)
	r.pool.MatMul(u, f.up, &r.acts)
	swigluRows(g, u, ff)
	r.matmul(r.out, f.down, g, n)
	return nil
}

// loadDenseFFN reads ffn_gate/up/down of layer i.
func loadDenseFFN(l *loader, i, embd, ff int) *denseFFN {
	return &denseFFN{
		gate: l.matrix(blk(i, "ffn_gate.weight"), embd, ff),
		up:   l.matrix(blk(i, "ffn_up.weight"), embd, ff),
		down: l.matrix(blk(i, "ffn_down.weight"), ff, embd),
	}
}
