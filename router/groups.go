package router

import (
	"context"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
)

// Group is one weighted sum of consecutive expert terms of a row: the sum
// w[0]*y[0] + w[1]*y[1] + ... added left to right, as experts.Backend adds
// a row's K terms. A row's full sum split into a leading group and single
// terms, added in order by the caller, has the bits of the unsplit sum.
type Group struct {
	Row     int
	Experts []int32
	Weights []float32
}

// Grouper computes groups with an experts.Backend: one Forward per
// distinct group size, with K = that size. It reuses its buffers, so
// steady-state use allocates nothing. It is not safe for concurrent use.
type Grouper struct {
	bySize []sizeBatch // bySize[k-1]: the groups of k terms
}

// sizeBatch is the backend batch of the groups of one size.
type sizeBatch struct {
	x       []float32
	q       []byte
	experts []int32
	weights []float32
	dst     []int32 // group index of each batch row
	out     []float32
	batch   experts.Batch // kept here: passed by pointer, it would escape
}

// Run computes groups over rows of embd values x (and their quantized
// copies q of type qt, nil when the backend takes f32) and writes group
// j's sum to dst[j*embd:(j+1)*embd].
func (g *Grouper) Run(ctx context.Context, be experts.Backend, layer, embd int, x []float32, q []byte, qt gguf.Type, groups []Group, dst []float32) error {
	rowBytes := 0
	if q != nil && len(x) > 0 {
		rowBytes = len(q) / (len(x) / embd)
	}
	for i := range g.bySize {
		b := &g.bySize[i]
		b.x, b.q, b.experts, b.weights, b.dst = b.x[:0], b.q[:0], b.experts[:0], b.weights[:0], b.dst[:0]
	}
	for j, gr := range groups {
		k := len(gr.Experts)
		for len(g.bySize) < k {
			g.bySize = append(g.bySize, sizeBatch{})
		}
		b := &g.bySize[k-1]
		b.x = append(b.x, x[gr.Row*embd:(gr.Row+1)*embd]...)
		if q != nil {
			b.q = append(b.q, q[gr.Row*rowBytes:(gr.Row+1)*rowBytes]...)
		}
		b.experts = append(b.experts, gr.Experts...)
		b.weights = append(b.weights, gr.Weights...)
		b.dst = append(b.dst, int32(j))
	}
	for i := range g.bySize {
		b := &g.bySize[i]
		n := len(b.dst)
		if n == 0 {
			continue
		}
		b.batch = experts.Batch{N: n, K: i + 1, Embd: embd, X: b.x, Experts: b.experts, Weights: b.weights}
		if q != nil {
			b.batch.Q, b.batch.QType = b.q, qt
		}
		if cap(b.out) < n*embd {
			b.out = make([]float32, n*embd)
		}
		b.out = b.out[:n*embd]
		err := be.Forward(ctx, layer, &b.batch, b.out)
		b.batch = experts.Batch{} // do not pin the caller's rows
		if err != nil {
			return err
		}
		for m, j := range b.dst {
			copy(dst[int(j)*embd:(int(j)+1)*embd], b.out[m*embd:(m+1)*embd])
		}
	}
	return nil
}
