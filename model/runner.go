package model

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// KVType is the element type of the attention cache.
type KVType int

// KV cache types.
const (
	KVF16 KVType = iota // llama.cpp's default
	KVF32
)

// ParseKVType parses "f16" or "f32".
func ParseKVType(s string) (KVType, error) {
	switch s {
	case "f16":
		return KVF16, nil
	case "f32":
		return KVF32, nil
	}
	return 0, fmt.Errorf("unknown KV cache type %q (want f16 or f32)", s)
}

func (k KVType) String() string {
	if k == KVF32 {
		return "f32"
	}
	return "f16"
}

// ErrContextFull is returned when a token's position is beyond the
// sequence's context size.
var ErrContextFull = errors.New("model: context is full")

// Sequence is one conversation's attention state: a cache per layer. A
// sequence is used by one Runner at a time.
type Sequence struct {
	ctx    int
	kv     KVType
	caches []layerCache
	prec   *Precision // per-layer weights (precision.go); nil: the model's
	// Len is the number of positions filled (the next token's position).
	Len int
}

// NewSequence allocates the caches for ctx positions.
func (m *Model) NewSequence(ctx int, kv KVType) (*Sequence, error) {
	if ctx <= 0 {
		return nil, fmt.Errorf("model: context size %d must be positive", ctx)
	}
	s := &Sequence{ctx: ctx, kv: kv}
	for _, l := range m.layers {
		s.caches = append(s.caches, l.attn.newCache(ctx, kv))
	}
	return s, nil
}

// Ctx returns the number of positions the sequence can hold.
func (s *Sequence) Ctx() int { return s.ctx }

// CacheBytes returns the memory the caches take.
func (s *Sequence) CacheBytes() int64 {
	var n int64
	for _, c := range s.caches {
		n += c.bytes()
	}
	return n
}

// Batch is the tokens one Forward evaluates: token i of sequence Seq[i] at
// position Pos[i]. Tokens of one sequence must come in increasing
// positions; a token attends to its own sequence's positions up to its own.
type Batch struct {
	Tokens []int32
	Pos    []int
	Seq    []*Sequence
	// Logits lists the batch rows whose next-token logits Forward returns
	// (in this order); nil means only the last row.
	Logits []int
}

// Reset empties b for reuse without freeing its slices.
func (b *Batch) Reset() {
	b.Tokens, b.Pos, b.Seq, b.Logits = b.Tokens[:0], b.Pos[:0], b.Seq[:0], b.Logits[:0]
}

// Add appends token tok of sequence s at position pos.
func (b *Batch) Add(s *Sequence, tok int32, pos int, logits bool) {
	if logits {
		b.Logits = append(b.Logits, len(b.Tokens))
	}
	b.Tokens = append(b.Tokens, tok)
	b.Pos = append(b.Pos, pos)
	b.Seq = append(b.Seq, s)
}

// Options configure a Runner.
type Options struct {
	// Threads for matrix products and attention (0: one per CPU).
	Threads int
	// MaxBatch is the most tokens one Forward takes (prompt chunks are
	// split to it by Eval).
	MaxBatch int
	// Experts computes the routed experts of MoE layers. Nil: the Runner
	// computes them in-process over the model's file on its own threads
	// (an experts.Local sharing the Runner's pool).
	Experts experts.Backend
}

// DefaultOptions returns the defaults: all CPUs, batches of 512.
func DefaultOptions() Options { return Options{MaxBatch: 512} }

// Runner evaluates batches of a model. It owns the thread pool and all
// scratch memory, sized once for MaxBatch tokens, so steady-state decoding
// allocates nothing. A Runner is used by one goroutine at a time.
type Runner struct {
	m    *Model
	opt  Options
	pool *kernels.Pool

	x, xn, out  []float32 // residual stream, normed input, block output: MaxBatch x Embd
	acts        kernels.Activations
	logitsBuf   []float32
	scratch     map[string][]float32
	attnTask    attnTask
	mlaTask     mlaTask
	scratchRows [][]float32
	cosBuf      []float32
	sinBuf      []float32

	// Mixture of experts.
	ctx          context.Context // of the Forward in progress, for the expert backend
	experts      experts.Backend
	expertsErr   error          // why experts is nil
	local        *experts.Local // the default backend, owned
	expertBatch  experts.Batch
	outBatch     Batch // the last layer's FFN rows (compactOutputs)
	compacted    bool  // r.x holds only the output rows, in b.Logits order
	expertIDs    []int32
	expertCounts [][]uint64 // [layer][expert] selections; nil for dense layers

	prec runnerPrecision // batches with per-sequence precision (precision.go)
}

// NewRunner allocates a Runner for m.
func (m *Model) NewRunner(opt Options) *Runner {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 512
	}
	c := &m.Config
	r := &Runner{m: m, opt: opt, pool: kernels.NewPool(opt.Threads), scratch: map[string][]float32{}}
	n := opt.MaxBatch * c.Embd
	r.x, r.xn, r.out = make([]float32, n), make([]float32, n), make([]float32, n)
	if c.Experts > 0 {
		r.expertCounts = make([][]uint64, len(m.layers))
		for l := range m.layers {
			if _, ok := m.layers[l].ffn.(*moeFFN); ok {
				r.expertCounts[l] = make([]uint64, c.Experts)
			}
		}
		r.experts = opt.Experts
		if r.experts == nil {
			// Load has checked the expert tensors, so this only fails on a
			// file changed underneath; Forward reports it.
			r.local, r.expertsErr = experts.NewLocal(m.File, experts.LocalConfig{Pool: r.pool})
			if r.expertsErr == nil {
				r.experts = r.local
			}
		}
	}
	return r
}

// Close stops the Runner's workers.
func (r *Runner) Close() {
	if r.local != nil {
		r.local.Close()
	}
	r.pool.Close()
}

// ExpertCounts returns how many times each expert of each layer was
// selected (one count per token and chosen expert) since the Runner was
// made or ResetExpertCounts: counts[layer][expert], nil for layers
// without routed experts, and nil for a dense model. The result is a copy.
// As in llama.cpp, the last layer routes only the rows whose logits a
// Forward returns, so its counts cover those tokens only.
func (r *Runner) ExpertCounts() [][]uint64 {
	if r.expertCounts == nil {
		return nil
	}
	out := make([][]uint64, len(r.expertCounts))
	for l, c := range r.expertCounts {
		if c != nil {
			out[l] = append([]uint64(nil), c...)
		}
	}
	return out
}

// ResetExpertCounts sets every expert count to zero.
func (r *Runner) ResetExpertCounts() {
	for _, c := range r.expertCounts {
		clear(c)
	}
}

// Model returns the model the Runner evaluates.
func (r *Runner) Model() *Model { return r.m }

// Threads returns the number of threads used.
func (r *Runner) Threads() int { return r.pool.Threads() }

// buf returns a named scratch buffer of at least n floats, allocated on
// first use and reused afterwards.
func (r *Runner) buf(name string, n int) []float32 {
	b := r.scratch[name]
	if cap(b) < n {
		b = make([]float32, n)
		r.scratch[name] = b
	}
	return b[:n]
}

// Forward evaluates b and returns the logits of the rows b.Logits names
// (len(b.Logits) x Vocab, valid until the next call). It advances each
// sequence's Len past its tokens.
//
// A model file truncated or rewritten while mapped fails the Forward with
// an error wrapping gguf.ErrFileChanged (the sequences are not advanced)
// instead of crashing the process; the Runner stays usable.
func (r *Runner) Forward(ctx context.Context, b *Batch) (logits []float32, err error) {
	return r.forward(ctx, b, false)
}

// Hidden evaluates b like Forward but returns, instead of logits, the
// final hidden state of the rows b.Logits names: the last layer's output
// after the output norm, before the LM head (len(b.Logits) x Embd, valid
// until the next call). Embeddings pool these rows.
func (r *Runner) Hidden(ctx context.Context, b *Batch) ([]float32, error) {
	return r.forward(ctx, b, true)
}

func (r *Runner) forward(ctx context.Context, b *Batch, hidden bool) (out []float32, err error) {
	defer gguf.CatchFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	c := &r.m.Config
	n := len(b.Tokens)
	if n == 0 {
		return nil, errors.New("model: empty batch")
	}
	if n > r.opt.MaxBatch {
		return nil, fmt.Errorf("model: batch of %d tokens exceeds the maximum %d", n, r.opt.MaxBatch)
	}
	if len(b.Pos) != n || len(b.Seq) != n {
		return nil, errors.New("model: batch tokens, positions and sequences differ in length")
	}
	for i := 0; i < n; i++ {
		if b.Pos[i] < 0 || b.Pos[i] >= b.Seq[i].ctx {
			return nil, fmt.Errorf("%w: position %d with a context of %d", ErrContextFull, b.Pos[i], b.Seq[i].ctx)
		}
		if err := r.m.embed(r.x[i*c.Embd:(i+1)*c.Embd], b.Tokens[i]); err != nil {
			return nil, err
		}
	}
	planned, err := r.planned(b)
	if err != nil {
		return nil, err
	}
	r.ctx = ctx
	defer func() { r.ctx = nil }()
	r.compacted = false
	last := len(r.m.layers) - 1
	for l := range r.m.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if planned { // some sequence runs some layer on other weights
			if err := r.forwardPlanned(l, b); err != nil {
				return nil, err
			}
			continue
		}
		ly := &r.m.layers[l]
		r.normRows(ly.attnNorm, n)
		ly.attn.forward(r, l, b)
		add(r.x[:n*c.Embd], r.out[:n*c.Embd])
		fb, m := b, n
		if l == last {
			// llama.cpp runs the last layer's FFN on the rows whose
			// logits are wanted only (inp_out_ids), and how many rows a
			// matmul has decides which ggml kernel (and float order) runs.
			if k := r.compactOutputs(b); k < n {
				fb, m = &r.outBatch, k
			}
		}
		r.normRows(ly.ffnNorm, m)
		if err := ly.ffn.forward(r, l, fb); err != nil {
			return nil, err
		}
		add(r.x[:m*c.Embd], r.out[:m*c.Embd])
	}
	for i := 0; i < n; i++ {
		if p := b.Pos[i] + 1; p > b.Seq[i].Len {
			b.Seq[i].Len = p
		}
	}
	return r.logits(b, hidden), nil
}

// normRows writes rmsnorm(x) * w for the first n rows into r.xn.
func (r *Runner) normRows(w []float32, n int) {
	e, eps := r.m.Config.Embd, r.m.Config.NormEps
	for i := 0; i < n; i++ {
		rmsNorm(r.xn[i*e:(i+1)*e], r.x[i*e:(i+1)*e], w, eps)
	}
}

// compactOutputs moves the residual rows whose logits b asks for to the
// front of r.x (in b.Logits order), fills r.outBatch with their tokens and
// returns how many there are; with every row asked for in order it does
// nothing and returns len(b.Tokens).
func (r *Runner) compactOutputs(b *Batch) int {
	n := len(b.Tokens)
	rows := b.Logits
	last := [1]int{n - 1}
	if len(rows) == 0 {
		rows = last[:]
	}
	if len(rows) >= n {
		return n
	}
	e := r.m.Config.Embd
	tmp := r.buf("out.rows", len(rows)*e)
	ob := &r.outBatch
	ob.Reset()
	for j, i := range rows {
		copy(tmp[j*e:(j+1)*e], r.x[i*e:(i+1)*e])
		ob.Tokens = append(ob.Tokens, b.Tokens[i])
		ob.Pos = append(ob.Pos, b.Pos[i])
		ob.Seq = append(ob.Seq, b.Seq[i])
	}
	copy(r.x, tmp)
	r.compacted = true
	return len(rows)
}

// logits runs the final norm and the LM head on the requested rows (with
// hidden, only the norm: it returns the normed rows).
func (r *Runner) logits(b *Batch, hidden bool) []float32 {
	c := &r.m.Config
	rows := b.Logits
	last := [1]int{len(b.Tokens) - 1}
	if len(rows) == 0 {
		rows = last[:]
	}
	for j, i := range rows {
		if r.compacted { // compactOutputs moved row i to j
			i = j
		}
		rmsNorm(r.xn[j*c.Embd:(j+1)*c.Embd], r.x[i*c.Embd:(i+1)*c.Embd], r.m.outputNorm, c.NormEps)
	}
	if hidden {
		return r.xn[:len(rows)*c.Embd]
	}
	if cap(r.logitsBuf) < len(rows)*c.Vocab {
		r.logitsBuf = make([]float32, len(rows)*c.Vocab)
	}
	out := r.logitsBuf[:len(rows)*c.Vocab]
	r.acts.Reset(r.xn, len(rows), c.Embd)
	r.pool.MatMul(out, r.m.output, &r.acts)
	return out
}

// matmul multiplies the n rows of x (cols wide) by w into out.
func (r *Runner) matmul(out []float32, w *kernels.Matrix, x []float32, n int) {
	r.acts.Reset(x, n, w.Cols)
	r.pool.MatMul(out, w, &r.acts)
}
