package model

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Eval feeds tokens to seq starting at seq.Len, in batches of the
// Runner's MaxBatch, and calls fn with the next-token logits of each
// position (all of them if all is true, else only the last).
func (r *Runner) Eval(ctx context.Context, seq *Sequence, tokens []int32, all bool, fn func(i int, logits []float32) error) error {
	if seq.Len+len(tokens) > seq.ctx {
		return fmt.Errorf("%w: %d tokens after %d filled positions exceed the context of %d",
			ErrContextFull, len(tokens), seq.Len, seq.ctx)
	}
	var b Batch
	vocab := r.m.Config.Vocab
	for start := 0; start < len(tokens); start += r.opt.MaxBatch {
		end := min(start+r.opt.MaxBatch, len(tokens))
		b.Reset()
		for i := start; i < end; i++ {
			b.Add(seq, tokens[i], seq.Len+i-start, all || i == len(tokens)-1)
		}
		logits, err := r.Forward(ctx, &b)
		if err != nil {
			return err
		}
		for j, i := range b.Logits {
			if err := fn(start+i, logits[j*vocab:(j+1)*vocab]); err != nil {
				return err
			}
		}
	}
	return nil
}

// PerplexityOptions configure Perplexity.
type PerplexityOptions struct {
	Ctx int   // chunk length in tokens
	BOS int32 // replaces each chunk's first token; -1 keeps it
	KV  KVType
	// Chunk is called after each chunk with its index and the running
	// estimate (for progress output); may be nil.
	Chunk func(i, n int, ppl float64)
	// Logits, if set, receives the logits of every scored position
	// together with the token it predicts.
	Logits func(target int32, logits []float32) error
	// Precision, if set, picks the weights each chunk is evaluated with
	// (adaptive precision); it sees the chunk before BOS replaces its
	// first token.
	Precision func(chunk []int32) *Precision
}

// PerplexityResult is the final estimate as llama.cpp prints it.
type PerplexityResult struct {
	PPL     float64 // exp(mean negative log-likelihood)
	StdErr  float64 // llama.cpp's +/- figure
	Chunks  int
	Scored  int
	MeanNLL float64
}

// Perplexity follows llama.cpp's perplexity tool: non-overlapping chunks of
// Ctx tokens, each evaluated from an empty cache with its first token
// replaced by BOS, scoring only the second half (positions Ctx/2 to Ctx-2
// predict the next token).
func (r *Runner) Perplexity(ctx context.Context, tokens []int32, o PerplexityOptions) (PerplexityResult, error) {
	if o.Ctx < 4 {
		return PerplexityResult{}, fmt.Errorf("perplexity: context %d is too small", o.Ctx)
	}
	n := len(tokens) / o.Ctx
	if n == 0 {
		return PerplexityResult{}, fmt.Errorf("perplexity: %d tokens are fewer than one chunk of %d", len(tokens), o.Ctx)
	}
	seq, err := r.m.NewSequence(o.Ctx, o.KV)
	if err != nil {
		return PerplexityResult{}, err
	}
	defer seq.SetPrecision(nil)
	var sum, sum2 float64
	count := 0
	chunk := make([]int32, o.Ctx)
	first := o.Ctx / 2
	for c := 0; c < n; c++ {
		copy(chunk, tokens[c*o.Ctx:(c+1)*o.Ctx])
		if o.Precision != nil {
			seq.SetPrecision(o.Precision(chunk))
		}
		if o.BOS >= 0 {
			chunk[0] = o.BOS
		}
		seq.Len = 0
		err := r.Eval(ctx, seq, chunk, true, func(i int, logits []float32) error {
			if i < first || i >= o.Ctx-1 {
				return nil
			}
			target := chunk[i+1]
			nll := NegLogLikelihood(logits, target)
			sum += nll
			sum2 += nll * nll
			count++
			if o.Logits != nil {
				return o.Logits(target, logits)
			}
			return nil
		})
		if err != nil {
			return PerplexityResult{}, err
		}
		if o.Chunk != nil {
			o.Chunk(c, n, math.Exp(sum/float64(count)))
		}
	}
	mean := sum / float64(count)
	res := PerplexityResult{PPL: math.Exp(mean), Chunks: n, Scored: count, MeanNLL: mean}
	if count > 1 {
		v := sum2/float64(count) - mean*mean
		res.StdErr = res.PPL * math.Sqrt(max(v, 0)/float64(count-1))
	}
	return res, nil
}

// NegLogLikelihood is -log softmax(logits)[target] computed as llama.cpp's
// perplexity does: float differences from the max, expf, a double sum.
func NegLogLikelihood(logits []float32, target int32) float64 {
	mx := slices.Max(logits)
	var sum float64
	for _, l := range logits {
		sum += float64(float32(math.Exp(float64(l - mx))))
	}
	return -float64(logits[target]-mx) + math.Log(sum)
}

// KLStats summarises KL(base || ours) over scored positions, as llama.cpp's
// perplexity --kl-divergence reports it.
type KLStats struct {
	Mean   float64
	P99    float64
	Max    float64
	Top1   float64 // fraction of positions with the same argmax
	Count  int
	values []float64
}

// Add accounts one position.
func (k *KLStats) Add(base, ours []float32) {
	d := KLDivergence(base, ours)
	k.values = append(k.values, d)
	if argmaxF(base) == argmaxF(ours) {
		k.Top1++
	}
	k.Count++
}

// Finish computes the summary figures.
func (k *KLStats) Finish() {
	if k.Count == 0 {
		return
	}
	s := slices.Clone(k.values)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	k.Mean = sum / float64(len(s))
	k.P99 = s[min(len(s)-1, int(math.Ceil(0.99*float64(len(s))))-1)]
	k.Max = s[len(s)-1]
	k.Top1 /= float64(k.Count)
}

// KLDivergence returns KL(softmax(p) || softmax(q)) in nats.
func KLDivergence(p, q []float32) float64 {
	lp, lq := logSumExp(p), logSumExp(q)
	var s float64
	for i := range p {
		a := float64(p[i]) - lp
		b := float64(q[i]) - lq
		s += math.Exp(a) * (a - b)
	}
	return max(s, 0)
}

func logSumExp(x []float32) float64 {
	mx := float64(slices.Max(x))
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

func argmaxF(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
