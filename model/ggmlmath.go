package model

import "github.com/inference-x/inference-x/kernels"

// Attention arithmetic in the order llama.cpp's CPU backend uses with an
// F32 KV cache and flash attention off (AVX-512 build of ggml-cpu):
//
//   - kq = mul_mat(k, q): q is a permuted view, so ggml takes its vec_dot
//     path: ggml_vec_dot_f32 over the head dimension (vecDotF32).
//   - soft_max over the padded cache length (softmaxRow).
//   - kqv = mul_mat(v, kq): with two or more tokens in the batch llamafile's
//     tinyBLAS runs it (each output a 16-lane FMA chain over the cache
//     positions, lane = position mod 16, then _mm512_reduce_add_ps); with
//     one token ggml_vec_dot_f32 runs it (4 x 16 lanes, position mod 64).

// vecDotF32 is ggml_vec_dot_f32 (kernels.VecDotF32).
func vecDotF32(x, y []float32) float32 { return kernels.VecDotF32(x, y) }

// kqvAcc accumulates the attention output of one head, out[d] = sum_j
// p[j]*v_j[d], in the lane order of ggml's kernel for the batch size:
// 16 lanes (tinyBLAS, n_tokens >= 2; lane = j mod 16) or 64 (the 4x16
// accumulators of ggml_vec_dot_f32, decode; lane = j mod 64). acc holds
// one row of vd values per lane, so each position updates one contiguous
// row. It must hold 64*vd floats.
type kqvAcc struct {
	acc   []float32
	vd    int
	width int // 16 or 64 lanes
}

func (k *kqvAcc) reset(acc []float32, vd int, batch bool) {
	k.vd, k.width = vd, 64
	if batch {
		k.width = 16
	}
	k.acc = acc[:vd*k.width]
	clear(k.acc)
}

// add accumulates p * v for cache position j: fma(v[d], p, acc).
func (k *kqvAcc) add(j int, p float32, v []float32) {
	l := j % k.width
	kernels.FMAAxpy(k.acc[l*k.vd:(l+1)*k.vd], v, p)
}

// sum writes the reduced outputs: for 64 lanes first (a0+a2)+(a1+a3) over
// the four 16-lane accumulators, then _mm512_reduce_add_ps.
func (k *kqvAcc) sum(out []float32) {
	kernels.LaneSum(out[:k.vd], k.acc, k.vd, k.width)
}

// vecDotF16Q is the q·k product of an F16 cache: q already rounded to
// F16 (ggml converts src1 to the cache type), products exact in float32.
// With two or more tokens and a head size that is a multiple of 16, ggml
// runs llamafile's tinyBLAS (16 lanes, reduced in float32); otherwise
// ggml_vec_dot_f16 (4x16 lanes over hd&^63, reduced into a float64 sum,
// the rest added in float64).
func vecDotF16Q(q []float32, k []uint16, batch bool) float32 {
	n := len(q)
	k = k[:n]
	if batch && n%16 == 0 {
		return kernels.DotF16Lanes16(q, k)
	}
	np := n &^ 63
	var sum float64
	if np > 0 {
		sum = float64(kernels.DotF16Lanes64(q[:np], k[:np]))
	}
	for i := np; i < n; i++ {
		sum += float64(q[i] * kernels.FP16ToF32(k[i]))
	}
	return float32(sum)
}

// addF16Rows is add for an F16 cache, for positions j = 0, 1, ..
// len(p)-1 with value rows vstride apart in v: p already rounded to F16,
// so every product is exact and the lanes only add.
func (k *kqvAcc) addF16Rows(p []float32, v []uint16, vstride int) {
	kernels.AxpyF16Rows(k.acc, k.vd, k.width, v, vstride, p)
}

// attendF16 is one head's attention over an F16 cache: scores[j] = q.k_j *
// scale for the len(scores) keys k[j*kstride:] (qh is q rounded to F16),
// the padded soft_max, then out = sum_j p_j v_j over the values
// v[j*vstride:][:len(out)] with p_j rounded to F16, in ggml's lane order
// for the batch size; acc is scratch for the lanes (64*len(out) floats).
func attendF16(out, scores, qh []float32, k []uint16, kstride int, v []uint16, vstride int, scale float32, batch bool, acc []float32) {
	hd := len(qh)
	if batch && hd%16 == 0 {
		// vecDotF16Q's tinyBLAS path, every key in one call.
		kernels.DotF16Lanes16Rows(scores, qh, k, kstride)
		for j := range scores {
			scores[j] *= scale
		}
	} else {
		for j := range scores {
			scores[j] = vecDotF16Q(qh, k[j*kstride:j*kstride+hd], batch) * scale
		}
	}
	softmaxRow(scores, (len(scores)+15)&^15)
	var kqv kqvAcc
	kqv.reset(acc, len(out), batch)
	kernels.RoundF16(scores)
	kqv.addF16Rows(scores, v, vstride)
	kqv.sum(out)
}
