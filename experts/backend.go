// Package experts is the boundary between a MoE layer and wherever its
// routed experts run. The model calls Backend.Forward once per MoE layer
// per batch; implementations run the experts in-process over the mmapped
// expert tensors (the store, paged under a memory budget) or send them to
// expert nodes (router/). The model does not know which.
package experts

import (
	"context"
	"errors"

	"github.com/inference-x/inference-x/gguf"
)

// ErrUnknownExpert is wrapped when a batch names an expert or layer the
// backend does not have.
var ErrUnknownExpert = errors.New("experts: unknown layer or expert")

// Batch is the work of one MoE layer for N token rows, each routed to K
// experts. The slices are flat and owned by the caller, which reuses them
// across layers and steps (no allocation per token).
type Batch struct {
	N, K int
	Embd int

	// X holds the N normed hidden rows (N*Embd), always present.
	X []float32
	// Q holds the same rows quantized to QType, the companion type of the
	// layer's gate/up expert weights (N * row bytes), exactly the bytes the
	// local kernel makes; nil when the weights take f32 activations. It is
	// what crosses the wire to expert nodes, so local and remote results
	// agree bit for bit.
	Q     []byte
	QType gguf.Type

	// Experts[i*K+k] is row i's k-th selected expert; Weights the matching
	// routing weight (already normalised and scaled).
	Experts []int32
	Weights []float32
}

// Backend computes routed experts.
//
// Forward writes into out (N*Embd) each row's weighted sum of its
// experts' SwiGLU FFN outputs, summing k = 0..K-1 in order, as llama.cpp
// does:
//
//	out[i] = sum_k Weights[i*K+k] * down_e(silu(gate_e(x_i)) * up_e(x_i)),  e = Experts[i*K+k]
//
// It blocks until done or ctx ends. Implementations are safe for
// concurrent use by several model runners (several sequences batches),
// unless they document otherwise.
type Backend interface {
	Forward(ctx context.Context, layer int, b *Batch, out []float32) error
}
