// Package experttest has an experts.Backend for tests of the expert
// service and the router that needs no model file: every expert is a
// cheap deterministic function of the activation (the quantized bytes
// when the batch has them), and rows are summed as experts.Backend
// specifies, so grouping and order mistakes change the bits.
package experttest

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// Backend is the fake. Its fields may be set before use.
type Backend struct {
	Layers, Experts, Embd int
	// Hook, when set, runs at the start of every Forward (to block, fail
	// or count); its error is returned.
	Hook func(ctx context.Context, layer int, b *experts.Batch) error
	// Calls counts Forward calls.
	Calls atomic.Int64
}

// New returns a fake of layers x experts experts over rows of embd values.
func New(layers, experts, embd int) *Backend {
	return &Backend{Layers: layers, Experts: experts, Embd: embd}
}

// Forward implements experts.Backend: expert e of layer l maps x to
// y[j] = x[j]*(1+a) + a*j with a = sin(l*1000+e*7+j) (x decoded from Q
// when present), and row i's output is sum_k w[k]*y_k added in order.
func (f *Backend) Forward(ctx context.Context, layer int, b *experts.Batch, out []float32) error {
	f.Calls.Add(1)
	if f.Hook != nil {
		if err := f.Hook(ctx, layer, b); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if layer < 0 || layer >= f.Layers || b.Embd != f.Embd {
		return fmt.Errorf("%w: layer %d", experts.ErrUnknownExpert, layer)
	}
	x := make([]float32, b.Embd)
	rb := 0
	if b.Q != nil {
		rb = kernels.ActivationBytes(b.QType, b.Embd)
	}
	for i := range b.N {
		if b.Q != nil {
			if err := kernels.DequantizeRow(b.QType, x, b.Q[i*rb:(i+1)*rb]); err != nil {
				return err
			}
		} else {
			copy(x, b.X[i*b.Embd:(i+1)*b.Embd])
		}
		o := out[i*b.Embd : (i+1)*b.Embd]
		for k := range b.K {
			e := int(b.Experts[i*b.K+k])
			if e < 0 || e >= f.Experts {
				return fmt.Errorf("%w: layer %d expert %d", experts.ErrUnknownExpert, layer, e)
			}
			w := b.Weights[i*b.K+k]
			for j := range o {
				a := float32(math.Sin(float64(layer*1000 + e*7 + j)))
				t := w * (x[j]*(1+a) + a*float32(j))
				if k == 0 {
					o[j] = t
				} else {
					o[j] += t
				}
			}
		}
	}
	return nil
}

// Batch makes a deterministic batch of n rows routed to k distinct
// experts each, with activations quantized to qt (F32: no Q).
func Batch(seed, n, k, embd, nExperts int, qt gguf.Type) *experts.Batch {
	b := &experts.Batch{N: n, K: k, Embd: embd, X: make([]float32, n*embd),
		Experts: make([]int32, n*k), Weights: make([]float32, n*k)}
	for i := range b.X {
		// magnitudes over several decades, so summation order shows
		b.X[i] = float32(math.Sin(float64(seed*131+i))) * float32(math.Pow(10, float64((i*7+seed)%5)-2))
	}
	for i := range n {
		used := map[int32]bool{}
		for kk := range k {
			e := int32((seed*17 + i*31 + kk*97) % nExperts)
			for used[e] {
				e = (e + 1) % int32(nExperts)
			}
			used[e] = true
			b.Experts[i*k+kk] = e
			b.Weights[i*k+kk] = float32(1+(i+kk+seed)%5) / 7
		}
	}
	if qt != gguf.TypeF32 {
		rb := kernels.ActivationBytes(qt, embd)
		b.Q, b.QType = make([]byte, n*rb), qt
		for i := range n {
			if err := kernels.QuantizeActivation(qt, b.Q[i*rb:(i+1)*rb], b.X[i*embd:(i+1)*embd]); err != nil {
				panic(err)
			}
		}
	}
	return b
}
