package model

import (
	"math"

	"github.com/inference-x/inference-x/internal/ggmlfp"
	"github.com/inference-x/inference-x/kernels"
)

// rmsNorm writes x / sqrt(mean(x^2) + eps) * w into dst, with ggml's
// arithmetic: the sum of squares in float64, the scale in float32.
// w may be nil (no weight).
func rmsNorm(dst, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	mean := float32(sum / float64(len(x)))
	scale := 1 / float32(math.Sqrt(float64(mean+eps)))
	if w == nil {
		for i, v := range x {
			dst[i] = v * scale
		}
		return
	}
	w = w[:len(x)]
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = (v * scale) * w[i]
	}
}

// silu is x * sigmoid(x) as ggml's scalar ggml_silu_f32 computes it:
// x / (1 + expf(-x)) with glibc's expf.
func silu(x float32) float32 { return ggmlfp.Silu(x) }

// exp32 is glibc's expf, which ggml's scalar code calls (sigmoid, the
// soft_max and silu tails).
func exp32(x float32) float32 { return ggmlfp.Expf(x) }

// swiglu sets gate[i] = silu(gate[i]) * up[i] for ONE row as
// ggml_vec_swiglu_f32 does on AVX-512: 16-lane blocks through ggml_v_silu,
// the len%16 tail through the scalar silu. Call it per row (swigluRows):
// the split point depends on the row length.
func swiglu(gate, up []float32) {
	up = up[:len(gate)]
	i := kernels.SwigluBlocks(gate, up)
	for ; i < len(gate); i++ {
		gate[i] = ggmlfp.Silu(gate[i]) * up[i]
	}
}

// swigluRows applies swiglu to each row of width cols of gate and up.
func swigluRows(gate, up []float32, cols int) {
	for i := 0; i+cols <= len(gate); i += cols {
		swiglu(gate[i:i+cols], up[i:i+cols])
	}
}

// add sets dst[i] += x[i].
func add(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}

// softmaxInPlace turns scores into probabilities as ggml_soft_max does for
// a row of len(s) values (see softmaxRow).
func softmaxInPlace(s []float32) { softmaxRow(s, len(s)) }

// softmaxRow is ggml's soft_max of a row of n values whose first len(s)
// are s and the rest are masked (-inf, so exp gives 0): the max, then
// ggml_vec_soft_max_f32 on AVX-512 (blocks of 16 through ggml_v_expf, each
// block summed with _mm512_reduce_add_ps and added to a float64 sum; the
// n%16 tail through glibc's expf, added one by one), then a scale by
// float32(1/sum).
func softmaxRow(s []float32, n int) {
	mx := float32(math.Inf(-1))
	for _, v := range s {
		mx = max(mx, v)
	}
	var sum float64
	tail := n - n%16
	i := 0
	for ; i < len(s) && i < tail; i += 16 {
		sum += float64(kernels.ExpBlock16(s[i:i+min(16, len(s)-i)], mx))
	}
	for ; i < len(s); i++ {
		e := ggmlfp.Expf(s[i] - mx)
		s[i] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range s {
		s[i] *= inv
	}
}

// cache fills cos and sin (Dims/2 entries each) for position pos, as
// ggml_rope_cache_init with rope_yarn does in ggml-cpu: theta multiplied by
// theta_scale step by step in float32, glibc's sincosf, the YaRN mix as
// GCC contracts it (one fused multiply-add).
func (r *Rope) cache(pos int, cos, sin []float32) {
	thetaScale := r.thetaScale()
	var corr [2]float32
	mscale := r.AttnFactor
	if r.ExtFactor != 0 {
		corr = r.corrDims()
		mscale = ggmlfp.FMA32(ggmlfp.Logf(1/r.FreqScale), 0.1, 1) * mscale
	}
	theta := float32(pos)
	for i := 0; i < r.Dims/2; i++ {
		thetaExtrap := theta
		thetaInterp := r.FreqScale * thetaExtrap
		t := thetaInterp
		if r.ExtFactor != 0 {
			rampMix := yarnRamp(corr[0], corr[1], 2*i) * r.ExtFactor
			t = ggmlfp.FMA32(thetaInterp, 1-rampMix, float32(thetaExtrap*rampMix))
		}
		s, c := ggmlfp.Sincosf(t)
		cos[i] = c * mscale
		sin[i] = s * mscale
		theta *= thetaScale
	}
}

// thetaScale is powf(freq_base, -2.0f/n_dims).
func (r *Rope) thetaScale() float32 {
	return float32(math.Pow(float64(r.FreqBase), float64(float32(-2.0)/float32(r.Dims))))
}

func yarnRamp(low, high float32, i0 int) float32 {
	y := (float32(i0/2) - low) / max(0.001, high-low)
	return 1 - min(1, max(0, y))
}

// corrDims is ggml_rope_yarn_corr_dims.
func (r *Rope) corrDims() [2]float32 {
	dim := func(nRot float32) float32 {
		return float32(r.Dims) * ggmlfp.Logf(float32(r.OrigCtx)/(nRot*2*math.Pi)) / (2 * ggmlfp.Logf(r.FreqBase))
	}
	start := float32(math.Floor(float64(dim(r.BetaFast))))
	end := float32(math.Ceil(float64(dim(r.BetaSlow))))
	return [2]float32{max(0, start), min(float32(r.Dims-1), end)}
}

// apply rotates the first Dims values of one head vector x in place, as
// ggml's rotate_pairs compiles with FMA: x0*cos - x1*sin and
// x0*sin + x1*cos each as one fused multiply-add on the rounded second
// product.
func (r *Rope) apply(x, cos, sin []float32) {
	half := r.Dims / 2
	if r.Style == RopeNeox {
		for i := 0; i < half; i++ {
			x0, x1 := x[i], x[i+half]
			x[i] = ggmlfp.FMA32(x0, cos[i], -float32(x1*sin[i]))
			x[i+half] = ggmlfp.FMA32(x0, sin[i], float32(x1*cos[i]))
		}
		return
	}
	for i := 0; i < half; i++ {
		x0, x1 := x[2*i], x[2*i+1]
		x[2*i] = ggmlfp.FMA32(x0, cos[i], -float32(x1*sin[i]))
		x[2*i+1] = ggmlfp.FMA32(x0, sin[i], float32(x1*cos[i]))
	}
}
