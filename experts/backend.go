// Package experts is the boundary between a MoE layer and wherever its
// routed experts run. The model calls Backend.Forward once per MoE layer
// per batch; implementations run the experts in-process over the mmapped
// expert tensors (the store, paged under a memory budget) or send them to
// expert nodes (router/). The model does not know which.
package experts

import (
	"context"
	"errors"
	"fmt"

	"github.com/inference-x/inference-x/gguf"
)

// ErrUnknownExpert is wrapped when a batch names an expert or layer the
// backend does not have.
var ErrUnknownExpert = errors.New("experts: unknown layer or expert")

// ErrUnavailable is matched (errors.Is) by errors saying an expert cannot
// run now: no live node holds it and local experts are off. It is
// transient (a node may join); the server answers 503 with Retry-After.
var ErrUnavailable = errors.New("experts: unavailable")

// Coverage says whether every routed expert of every MoE layer can run.
type Coverage struct {
	// Uncovered counts the (layer, expert) pairs nothing can run now.
	Uncovered int
	// Layer and Expert name the first uncovered pair (when Uncovered > 0).
	Layer, Expert int
}

// Covered reports whether every expert can run.
func (c Coverage) Covered() bool { return c.Uncovered == 0 }

// Reason says which expert is uncovered ("" when covered).
func (c Coverage) Reason() string {
	if c.Covered() {
		return ""
	}
	return fmt.Sprintf("layer %d expert %d has no live holder", c.Layer, c.Expert)
}

// CoverageReporter is a backend that knows which experts it can run now
// (the router). Coverage must be cheap and safe for concurrent use.
type CoverageReporter interface {
	Coverage() Coverage
}

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
