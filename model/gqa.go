package model

import (
	"github.com/inference-x/inference-x/kernels"
)

// gqa is grouped-query attention as llama, qwen2 and qwen3 use it: Q, K, V
// projections (optional biases), optional per-head RMS norm of q and k,
// RoPE, a causal softmax over the sequence's cache, and the output
// projection.
type gqa struct {
	q, k, v, o        *kernels.Matrix
	qBias, kBias      []float32
	vBias, oBias      []float32
	qNorm, kNorm      []float32 // per-head weights (qwen3), or nil
	heads, kvHeads    int
	headDim, vHeadDim int
	rope              *Rope
	scale             float32
	eps               float32
}

// kvCache holds K and V for every position: F32 position-major
// (k32[p*width + h*headDim + d]), or F16 bits head-major (k16[(h*ctx +
// p)*headDim + d]), so that one head's keys and values are contiguous for
// the attention loops.
type kvCache struct {
	width  int // kvHeads*headDim (K) — V uses vWidth
	vWidth int
	ctx    int
	k32    []float32
	v32    []float32
	k16    []uint16
	v16    []uint16
}

func (c *kvCache) bytes() int64 {
	return int64(len(c.k32)+len(c.v32))*4 + int64(len(c.k16)+len(c.v16))*2
}

func (a *gqa) newCache(ctx int, kv KVType) layerCache {
	c := &kvCache{width: a.kvHeads * a.headDim, vWidth: a.kvHeads * a.vHeadDim, ctx: ctx}
	if kv == KVF32 {
		c.k32 = make([]float32, ctx*c.width)
		c.v32 = make([]float32, ctx*c.vWidth)
	} else {
		c.k16 = make([]uint16, ctx*c.width)
		c.v16 = make([]uint16, ctx*c.vWidth)
	}
	return c
}

func (a *gqa) forward(r *Runner, l int, b *Batch) {
	n := len(b.Tokens)
	embd := r.m.Config.Embd
	qw, kw, vw := a.heads*a.headDim, a.kvHeads*a.headDim, a.kvHeads*a.vHeadDim
	q := r.buf("q", n*qw)
	k := r.buf("k", n*kw)
	v := r.buf("v", n*vw)
	r.acts.Reset(r.xn, n, embd)
	r.pool.MatMul(q, a.q, &r.acts)
	r.pool.MatMul(k, a.k, &r.acts)
	r.pool.MatMul(v, a.v, &r.acts)
	cos := r.buf("rope.cos", a.rope.Dims/2)
	sin := r.buf("rope.sin", a.rope.Dims/2)
	for i := 0; i < n; i++ {
		qi, ki, vi := q[i*qw:(i+1)*qw], k[i*kw:(i+1)*kw], v[i*vw:(i+1)*vw]
		addBias(qi, a.qBias)
		addBias(ki, a.kBias)
		addBias(vi, a.vBias)
		a.rope.cache(b.Pos[i], cos, sin)
		for h := 0; h < a.heads; h++ {
			x := qi[h*a.headDim : (h+1)*a.headDim]
			if a.qNorm != nil {
				rmsNorm(x, x, a.qNorm, a.eps)
			}
			a.rope.apply(x, cos, sin)
		}
		for h := 0; h < a.kvHeads; h++ {
			x := ki[h*a.headDim : (h+1)*a.headDim]
			if a.kNorm != nil {
				rmsNorm(x, x, a.kNorm, a.eps)
			}
			a.rope.apply(x, cos, sin)
		}
		c := b.Seq[i].caches[l].(*kvCache)
		p := b.Pos[i]
		if c.k32 != nil {
			copy(c.k32[p*kw:(p+1)*kw], ki)
			copy(c.v32[p*vw:(p+1)*vw], vi)
		} else {
			hd, vd := a.headDim, a.vHeadDim
			for h := 0; h < a.kvHeads; h++ {
				kernels.ToF16(c.k16[(h*c.ctx+p)*hd:(h*c.ctx+p+1)*hd], ki[h*hd:(h+1)*hd])
				kernels.ToF16(c.v16[(h*c.ctx+p)*vd:(h*c.ctx+p+1)*vd], vi[h*vd:(h+1)*vd])
			}
		}
	}
	att := r.buf("attn", n*a.heads*a.vHeadDim)
	t := &r.attnTask
	t.a, t.b, t.l, t.q, t.out, t.n = a, b, l, q, att, n
	// The batch-invariant mode keeps one lane order whatever n is.
	t.batch = n >= 2 || kernels.BatchInvariant()
	t.scores = r.workerScratch("attn.scores", b, a.headDim+32*a.vHeadDim)
	r.pool.Run(n*a.heads, 1, t)
	t.a, t.b, t.q, t.out = nil, nil, nil, nil
	r.matmul(r.out, a.o, att, n)
	if a.oBias != nil {
		for i := 0; i < n; i++ {
			addBias(r.out[i*embd:(i+1)*embd], a.oBias)
		}
	}
}

// workerScratch returns one scratch row per pool worker, each long enough
// for the longest sequence in b plus 2*headDim floats.
func (r *Runner) workerScratch(name string, b *Batch, headDim int) [][]float32 {
	longest := 0
	for _, s := range b.Seq {
		longest = max(longest, s.ctx)
	}
	per := longest + 2*headDim
	flat := r.buf(name, per*r.pool.Threads())
	rows := r.scratchRows[:0]
	for w := 0; w < r.pool.Threads(); w++ {
		rows = append(rows, flat[w*per:(w+1)*per])
	}
	r.scratchRows = rows
	return rows
}

// attnTask computes softmax(q k^T * scale) v for (head, token) pairs,
// head-major: consecutive pairs share a head, so that head's keys and
// values stay in cache across the tokens of a prompt.
type attnTask struct {
	a      *gqa
	n      int // tokens
	b      *Batch
	l      int
	q      []float32
	out    []float32
	scores [][]float32
	batch  bool // n_tokens >= 2: ggml's kqv runs in tinyBLAS
}

func (t *attnTask) Do(lo, hi, worker int) {
	a := t.a
	hd, vd := a.headDim, a.vHeadDim
	group := a.heads / a.kvHeads
	kw, vw := a.kvHeads*hd, a.kvHeads*vd
	buf := t.scores[worker]
	for idx := lo; idx < hi; idx++ {
		h, i := idx/t.n, idx%t.n
		kh := h / group
		c := t.b.Seq[i].caches[t.l].(*kvCache)
		npos := t.b.Pos[i] + 1
		q := t.q[i*a.heads*hd+h*hd : i*a.heads*hd+(h+1)*hd]
		scores := buf[:npos]
		out := t.out[i*a.heads*vd+h*vd : i*a.heads*vd+(h+1)*vd]
		clear(out)
		if c.k32 != nil {
			for j := 0; j < npos; j++ {
				scores[j] = vecDotF32(q, c.k32[j*kw+kh*hd:j*kw+(kh+1)*hd]) * a.scale
			}
			// ggml pads the cache length to a multiple of 256: every
			// score goes through the 16-lane exp.
			softmaxRow(scores, (npos+15)&^15)
			var kqv kqvAcc
			kqv.reset(buf[npos:], vd, t.batch)
			for j := 0; j < npos; j++ {
				kqv.add(j, scores[j], c.v32[j*vw+kh*vd:j*vw+(kh+1)*vd])
			}
			kqv.sum(out)
			continue
		}
		// F16 cache: ggml rounds q to F16 for the K product and the
		// probabilities to F16 for the V product.
		qh := buf[npos : npos+hd]
		copy(qh, q)
		kernels.RoundF16(qh)
		attendF16(out, scores, qh, c.k16[kh*c.ctx*hd:], hd, c.v16[kh*c.ctx*vd:], vd, a.scale, t.batch, buf[npos+hd:])
	}
}

func addBias(x, b []float32) {
	if b != nil {
		add(x, b)
	}
}

func dotF32(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

func dotF16(a []float32, b []uint16) float32 {
	b = b[:len(a)]
	var s float32
	for i, v := range a {
		s += v * kernels.FP16ToF32(b[i])
	}
	return s
}

func axpy(dst, x []float32, a float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += a * x[i]
	}
}

func axpyF16(dst []float32, x []uint16, a float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += a * kernels.FP16ToF32(x[i])
	}
}
