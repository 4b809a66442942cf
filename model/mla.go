package model

import (
	"fmt"

	"github.com/inference-x/inference-x/kernels"
)

// mla is DeepSeek's multi-head latent attention in its absorbed form, as
// llama.cpp runs it: each token's keys and values are one compressed
// latent (kvLora wide, RMS-normed) plus one RoPE key (rope wide) shared
// by all heads, and that pair is all the cache holds. A head's query is
// its no-RoPE part mapped into the latent space by k_b (absorbed) next to
// its RoPE part; the attention-weighted latent is mapped out to the head's
// value by v_b.
//
// Files come in two layouts: the split attn_k_b / attn_v_b (per-head 3-D
// tensors, the form llama.cpp computes with) and the older attn_kv_b
// (one [kvLora -> heads*(nope+v)] matrix), from which the same per-head
// maps are viewed in place.
type mla struct {
	qA      *kernels.Matrix // q_lora: embd -> qLora, then qANorm, then qB
	qANorm  []float32
	qB      *kernels.Matrix
	q       *kernels.Matrix // no q_lora: embd -> heads*(nope+rope)
	kvA     *kernels.Matrix // embd -> kvLora + rope
	kvANorm []float32
	kB      []kernels.Matrix // split layout: per head, kvLora rows of nope
	kT      []kernels.Matrix // kv_b layout: per head, nope rows of kvLora (used transposed)
	vB      []kernels.Matrix // per head, v rows of kvLora
	o       *kernels.Matrix  // heads*v -> embd

	heads, nope, rope, kvLora, v int
	ropeP                        *Rope
	scale                        float32
	eps                          float32
}

// mlaCache holds per position the normed latent then the roped key:
// kvLora+rope values, F32 or F16 bits.
type mlaCache struct {
	width int
	k32   []float32
	k16   []uint16
}

func (c *mlaCache) bytes() int64 { return int64(len(c.k32))*4 + int64(len(c.k16))*2 }

func (a *mla) newCache(ctx int, kv KVType) layerCache {
	c := &mlaCache{width: a.kvLora + a.rope}
	if kv == KVF32 {
		c.k32 = make([]float32, ctx*c.width)
	} else {
		c.k16 = make([]uint16, ctx*c.width)
	}
	return c
}

func (a *mla) forward(r *Runner, l int, b *Batch) {
	n := len(b.Tokens)
	embd := r.m.Config.Embd
	qk := a.nope + a.rope // a head's query before absorption
	qw := a.heads * qk
	kw := a.kvLora + a.rope // a cache row, and a head's absorbed query

	q := r.buf("mla.q", n*qw)
	kv := r.buf("mla.kv", n*kw)
	r.acts.Reset(r.xn, n, embd)
	r.pool.MatMul(kv, a.kvA, &r.acts)
	if a.qA != nil {
		qa := r.buf("mla.qa", n*a.qA.Rows)
		r.pool.MatMul(qa, a.qA, &r.acts)
		for i := 0; i < n; i++ {
			row := qa[i*a.qA.Rows : (i+1)*a.qA.Rows]
			rmsNorm(row, row, a.qANorm, a.eps)
		}
		r.matmul(q, a.qB, qa, n)
	} else {
		r.pool.MatMul(q, a.q, &r.acts)
	}

	cos := r.buf("rope.cos", a.ropeP.Dims/2)
	sin := r.buf("rope.sin", a.ropeP.Dims/2)
	for i := 0; i < n; i++ {
		row := kv[i*kw : (i+1)*kw]
		latent, kpe := row[:a.kvLora], row[a.kvLora:]
		rmsNorm(latent, latent, a.kvANorm, a.eps)
		a.ropeP.cache(b.Pos[i], cos, sin)
		a.ropeP.apply(kpe, cos, sin)
		for h := 0; h < a.heads; h++ {
			a.ropeP.apply(q[i*qw+h*qk+a.nope:i*qw+(h+1)*qk], cos, sin)
		}
		c := b.Seq[i].caches[l].(*mlaCache)
		p := b.Pos[i]
		if c.k32 != nil {
			copy(c.k32[p*kw:(p+1)*kw], row)
		} else {
			kernels.ToF16(c.k16[p*kw:(p+1)*kw], row)
		}
	}

	// The absorbed queries: per (token, head) [k_b . q_nope, q_pe].
	qc := r.buf("mla.qcat", n*a.heads*kw)
	for i := 0; i < n; i++ {
		for h := 0; h < a.heads; h++ {
			copy(qc[(i*a.heads+h)*kw+a.kvLora:(i*a.heads+h+1)*kw], q[i*qw+h*qk+a.nope:i*qw+(h+1)*qk])
		}
	}
	a.absorb(r, q, qc, n)

	// Attention over the cached latents, per (token, head).
	lat := r.buf("mla.latent", n*a.heads*a.kvLora)
	t := &r.mlaTask
	t.a, t.b, t.l, t.q, t.out = a, b, l, qc, lat
	// The batch-invariant mode keeps one lane order whatever n is.
	t.batch = n >= 2 || kernels.BatchInvariant()
	t.scores = r.workerScratch("attn.scores", b, kw+32*a.kvLora)
	r.pool.Run(n*a.heads, 1, t)
	t.a, t.b, t.q, t.out = nil, nil, nil, nil

	// Per head, the latent out to the value: v_b . latent.
	att := r.buf("attn", n*a.heads*a.v)
	in := r.buf("mla.head.in", n*a.kvLora)
	res := r.buf("mla.head.out", n*a.v)
	for h := 0; h < a.heads; h++ {
		for i := 0; i < n; i++ {
			copy(in[i*a.kvLora:(i+1)*a.kvLora], lat[(i*a.heads+h)*a.kvLora:(i*a.heads+h+1)*a.kvLora])
		}
		r.matmul(res, &a.vB[h], in, n)
		for i := 0; i < n; i++ {
			copy(att[i*a.heads*a.v+h*a.v:i*a.heads*a.v+(h+1)*a.v], res[i*a.v:(i+1)*a.v])
		}
	}
	r.matmul(r.out, a.o, att, n)
}

// absorb writes each (token, head)'s k_b . q_nope into the first kvLora
// values of its row of qc.
func (a *mla) absorb(r *Runner, q, qc []float32, n int) {
	qk := a.nope + a.rope
	qw := a.heads * qk
	kw := a.kvLora + a.rope
	in := r.buf("mla.head.in", n*a.nope)
	res := r.buf("mla.head.out", n*a.kvLora)
	for h := 0; h < a.heads; h++ {
		for i := 0; i < n; i++ {
			copy(in[i*a.nope:(i+1)*a.nope], q[i*qw+h*qk:i*qw+h*qk+a.nope])
		}
		if a.kB != nil {
			// llama.cpp multiplies k_b by a permuted view of q_nope.
			r.acts.Reset(in, n, a.kB[h].Cols)
			r.acts.Strided = true
			r.pool.MatMul(res, &a.kB[h], &r.acts)
		} else {
			a.absorbTransposed(r, &a.kT[h], in, res, n)
		}
		for i := 0; i < n; i++ {
			copy(qc[(i*a.heads+h)*kw:(i*a.heads+h)*kw+a.kvLora], res[i*a.kvLora:(i+1)*a.kvLora])
		}
	}
}

// absorbTransposed computes res[i] = m^T . in[i] for the kv_b layout, whose
// per-head key map m has nope rows of kvLora: one decoded weight row at a
// time, scaled into each token's result.
func (a *mla) absorbTransposed(r *Runner, m *kernels.Matrix, in, res []float32, n int) {
	row := r.buf("mla.kT.row", m.Cols)
	clear(res[:n*m.Cols])
	for j := 0; j < m.Rows; j++ {
		// The matrix was checked at load: DequantizeRow cannot fail.
		_ = kernels.DequantizeRow(m.Type, row, m.Row(j))
		for i := 0; i < n; i++ {
			axpy(res[i*m.Cols:(i+1)*m.Cols], row, in[i*m.Rows+j])
		}
	}
}

// mlaTask computes, for (token, head) pairs, the attention-weighted sum
// of the cached latents: softmax(qc . K^T * scale) . latents.
type mlaTask struct {
	a      *mla
	b      *Batch
	l      int
	q      []float32
	out    []float32
	scores [][]float32
	batch  bool // n_tokens >= 2: ggml's kqv runs in tinyBLAS
}

func (t *mlaTask) Do(lo, hi, worker int) {
	a := t.a
	kw, lw := a.kvLora+a.rope, a.kvLora
	buf := t.scores[worker]
	for idx := lo; idx < hi; idx++ {
		i := idx / a.heads
		c := t.b.Seq[i].caches[t.l].(*mlaCache)
		npos := t.b.Pos[i] + 1
		q := t.q[idx*kw : (idx+1)*kw]
		scores := buf[:npos]
		out := t.out[idx*lw : (idx+1)*lw]
		clear(out)
		if c.k32 != nil {
			// As for GQA (gqa.go): ggml_vec_dot_f32 for kq, the padded
			// soft_max, and kqv (over v_cont, the latents) in tinyBLAS's
			// or vec_dot's lane order.
			for j := 0; j < npos; j++ {
				scores[j] = vecDotF32(q, c.k32[j*kw:(j+1)*kw]) * a.scale
			}
			softmaxRow(scores, (npos+15)&^15)
			var kqv kqvAcc
			kqv.reset(buf[npos:], lw, t.batch)
			for j := 0; j < npos; j++ {
				kqv.add(j, scores[j], c.k32[j*kw:j*kw+lw])
			}
			kqv.sum(out)
			continue
		}
		// F16 cache: ggml rounds q to F16 for the K product and the
		// probabilities to F16 for the V product.
		qh := buf[npos : npos+kw]
		copy(qh, q)
		kernels.RoundF16(qh)
		attendF16(out, scores, qh, c.k16, kw, c.k16, kw, a.scale, t.batch, buf[npos+kw:])
	}
}

// perHead views a 3-D tensor [cols, rows, heads] as one matrix per head.
func (l *loader) perHead(name string, cols, rows, heads int) []kernels.Matrix {
	t := l.tensor(name, false, cols, rows, heads)
	if t == nil {
		return nil
	}
	size := len(t.Data) / heads
	out := make([]kernels.Matrix, heads)
	for h := range out {
		m, err := kernels.NewMatrix(t.Type, rows, cols, t.Data[h*size:(h+1)*size])
		if err != nil {
			l.fail(fmt.Errorf("%w: tensor %s: %v", ErrTensor, name, err))
			return nil
		}
		out[h] = m
	}
	return out
}

// splitKVB views the kv_b layout's matrix (per head: nope key rows then v
// value rows, kvLora wide) as per-head key and value maps.
func (l *loader) splitKVB(name string, kvLora, heads, nope, v int) (k, val []kernels.Matrix) {
	m := l.matrix(name, kvLora, heads*(nope+v))
	if m == nil {
		return nil, nil
	}
	k, val = make([]kernels.Matrix, heads), make([]kernels.Matrix, heads)
	rb := m.RowBytes
	for h := 0; h < heads; h++ {
		base := h * (nope + v) * rb
		km, err1 := kernels.NewMatrix(m.Type, nope, kvLora, m.Data[base:base+nope*rb])
		vm, err2 := kernels.NewMatrix(m.Type, v, kvLora, m.Data[base+nope*rb:base+(nope+v)*rb])
		if err := firstErr(err1, err2); err != nil {
			l.fail(fmt.Errorf("%w: tensor %s: %v", ErrTensor, name, err))
			return nil, nil
		}
		k[h], val[h] = km, vm
	}
	return k, val
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
