package model

import (
	"math"

	"github.com/inference-x/inference-x/internal/ggmlfp"
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

// vecDotF32 is ggml_vec_dot_f32 on AVX-512 (GGML_F32_STEP 64, EPR 16) as
// GCC compiled it: four 16-lane FMA accumulators over the first n&^63
// elements, combined (a0+a2)+(a1+a3) and reduced; the rest added to that
// float sum in order, blocks of 16 and then 8 as rounded products
// (vectorised multiply, scalar adds), the last n%8 with scalar FMA.
func vecDotF32(x, y []float32) float32 {
	n := len(x)
	y = y[:n]
	np := n &^ 63
	var sumf float32
	if np > 0 {
		var acc [4][16]float32
		for i := 0; i < np; i += 64 {
			for j := range acc {
				xs, ys := x[i+16*j:i+16*j+16], y[i+16*j:i+16*j+16]
				a := &acc[j]
				for l := range a {
					// ggmlfp.FMA32's fast path, inlined.
					s := float64(xs[l])*float64(ys[l]) + float64(a[l])
					r := float32(s)
					if math.Float64bits(s)&0x0fffffff == 0 {
						r = ggmlfp.FMA32(xs[l], ys[l], a[l])
					}
					a[l] = r
				}
			}
		}
		for l := range acc[0] {
			acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
		}
		sumf = ggmlfp.Reduce16(&acc[0])
	}
	i := np
	for ; n-i >= 16; i += 16 {
		for l := 0; l < 16; l++ {
			sumf += float32(x[i+l] * y[i+l])
		}
	}
	if n-i >= 8 {
		for l := 0; l < 8; l++ {
			sumf += float32(x[i+l] * y[i+l])
		}
		i += 8
	}
	for ; i < n; i++ {
		sumf = ggmlfp.FMA32(x[i], y[i], sumf)
	}
	return sumf
}

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
