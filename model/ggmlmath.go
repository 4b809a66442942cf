package model

import (
	"math"

	"github.com/inference-x/inference-x/internal/ggmlfp"
	"github.com/inference-x/inference-x/kernels"
)

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
// lanes16 (tinyBLAS, n_tokens >= 2) or lanes64 (ggml_vec_dot_f32, decode).
// acc must hold 64*len(out) floats. v(j) returns position j's value row.
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

// add accumulates p * v for cache position j.
func (k *kqvAcc) add(j int, p float32, v []float32) {
	l := j % k.width
	v = v[:k.vd]
	acc := k.acc[l:]
	for d, x := range v {
		a := &acc[d*k.width]
		// ggmlfp.FMA32's fast path, inlined.
		s := float64(x)*float64(p) + float64(*a)
		r := float32(s)
		if math.Float64bits(s)&0x0fffffff == 0 {
			r = ggmlfp.FMA32(x, p, *a)
		}
		*a = r
	}
}

// sum writes the reduced outputs.
func (k *kqvAcc) sum(out []float32) {
	var r [16]float32
	for d := range out[:k.vd] {
		a := k.acc[d*k.width : (d+1)*k.width]
		if k.width == 16 {
			copy(r[:], a)
		} else {
			for l := range r {
				r[l] = (a[l] + a[32+l]) + (a[16+l] + a[48+l])
			}
		}
		out[d] = ggmlfp.Reduce16(&r)
	}
}
