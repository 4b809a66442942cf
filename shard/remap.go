package shard

import (
	"context"
	"fmt"
	"sync"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
)

// Remap is an experts.Backend over the experts of a shard file: callers
// name experts by their global ids, the inner backend (which indexes the
// shard's tensors) by their position in the shard, and Remap translates.
// An expert the shard does not hold fails with experts.ErrUnknownExpert.
// The batch's other fields pass through untouched, so results are the
// bits the whole model gives. It is safe for concurrent use when the
// inner backend is; Forward allocates nothing in the steady state.
type Remap struct {
	inner experts.Backend
	// local[l][global] is the shard's index of the expert, or -1; nil for
	// a layer with no experts in the shard.
	local [][]int32
	ids   sync.Pool // *[]int32 scratch
}

// NewRemap wraps inner, a backend over the tensors of a file with shard
// info sh, for a model of layers layers and total experts per layer.
func NewRemap(inner experts.Backend, sh *gguf.ShardInfo, layers, total int) *Remap {
	r := &Remap{inner: inner, local: make([][]int32, layers)}
	for l, ids := range sh.Experts {
		if l < 0 || l >= layers {
			continue
		}
		m := make([]int32, total)
		for i := range m {
			m[i] = -1
		}
		for i, e := range ids {
			m[e] = int32(i)
		}
		r.local[l] = m
	}
	return r
}

// Forward implements experts.Backend.
func (r *Remap) Forward(ctx context.Context, layer int, b *experts.Batch, out []float32) error {
	if layer < 0 || layer >= len(r.local) || r.local[layer] == nil {
		return fmt.Errorf("%w: layer %d has no experts in this shard", experts.ErrUnknownExpert, layer)
	}
	m := r.local[layer]
	n := b.N * b.K
	if n < 0 || n > len(b.Experts) {
		return fmt.Errorf("experts: batch of %d rows x %d experts has %d expert ids", b.N, b.K, len(b.Experts))
	}
	p, _ := r.ids.Get().(*[]int32)
	if p == nil {
		p = new([]int32)
	}
	defer r.ids.Put(p)
	if cap(*p) < n {
		*p = make([]int32, n)
	}
	ids := (*p)[:n]
	for i, e := range b.Experts[:n] {
		if e < 0 || int(e) >= len(m) || m[e] < 0 {
			return fmt.Errorf("%w: expert %d of layer %d is not in this shard", experts.ErrUnknownExpert, e, layer)
		}
		ids[i] = m[e]
	}
	lb := *b
	lb.Experts = ids
	return r.inner.Forward(ctx, layer, &lb, out)
}

// resident is what a paging backend adds (expertnode.Resident).
type resident interface {
	Load(ctx context.Context, layer int, ids []int) error
	Release(ctx context.Context, layer int, ids []int) error
}

// Load maps ids to the shard's and passes them to the inner backend when
// it pages experts in and out; otherwise it only checks them.
func (r *Remap) Load(ctx context.Context, layer int, ids []int) error {
	loc, err := r.toLocal(layer, ids)
	if err != nil {
		return err
	}
	if in, ok := r.inner.(resident); ok {
		return in.Load(ctx, layer, loc)
	}
	return nil
}

// Release is Load's counterpart.
func (r *Remap) Release(ctx context.Context, layer int, ids []int) error {
	loc, err := r.toLocal(layer, ids)
	if err != nil {
		return err
	}
	if in, ok := r.inner.(resident); ok {
		return in.Release(ctx, layer, loc)
	}
	return nil
}

func (r *Remap) toLocal(layer int, ids []int) ([]int, error) {
	if layer < 0 || layer >= len(r.local) || r.local[layer] == nil {
		return nil, fmt.Errorf("%w: layer %d has no experts in this shard", experts.ErrUnknownExpert, layer)
	}
	out := make([]int, len(ids))
	for i, e := range ids {
		if e < 0 || e >= len(r.local[layer]) || r.local[layer][e] < 0 {
			return nil, fmt.Errorf("%w: expert %d of layer %d is not in this shard", experts.ErrUnknownExpert, e, layer)
		}
		out[i] = int(r.local[layer][e])
	}
	return out, nil
}
