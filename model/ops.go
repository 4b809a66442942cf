package model

import (
	"math"
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

// silu is x * sigmoid(x) as ggml computes it: x / (1 + exp(-x)).
func silu(x float32) float32 { return x / (1 + exp32(-x)) }

func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

// swiglu sets gate[i] = silu(gate[i]) * up[i].
func swiglu(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = silu(g) * up[i]
	}
}

// add sets dst[i] += x[i].
func add(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}

// softmaxInPlace turns scores into probabilities: exp(s - max) / sum, the
// sum in float64 as ggml does.
func softmaxInPlace(s []float32) {
	mx := float32(math.Inf(-1))
	for _, v := range s {
		mx = max(mx, v)
	}
	var sum float64
	for i, v := range s {
		e := exp32(v - mx)
		s[i] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range s {
		s[i] *= inv
	}
}

// cache fills cos and sin (Dims/2 entries each) for position pos, as
// ggml_rope_cache_init with YaRN (rope_yarn) does.
func (r *Rope) cache(pos int, cos, sin []float32) {
	thetaScale := float32(math.Pow(float64(r.FreqBase), -2.0/float64(r.Dims)))
	var corr [2]float32
	if r.ExtFactor != 0 {
		corr = r.corrDims()
	}
	theta := float32(pos)
	for i := 0; i < r.Dims/2; i++ {
		thetaExtrap := theta
		thetaInterp := r.FreqScale * thetaExtrap
		t := thetaInterp
		mscale := r.AttnFactor
		if r.ExtFactor != 0 {
			rampMix := yarnRamp(corr[0], corr[1], 2*i) * r.ExtFactor
			t = thetaInterp*(1-rampMix) + thetaExtrap*rampMix
			mscale *= 1 + 0.1*log32(1/r.FreqScale)
		}
		cos[i] = float32(math.Cos(float64(t))) * mscale
		sin[i] = float32(math.Sin(float64(t))) * mscale
		theta *= thetaScale
	}
}

func yarnRamp(low, high float32, i0 int) float32 {
	y := (float32(i0/2) - low) / max(0.001, high-low)
	return 1 - min(1, max(0, y))
}

// corrDims is ggml_rope_yarn_corr_dims.
func (r *Rope) corrDims() [2]float32 {
	dim := func(nRot float32) float32 {
		return float32(r.Dims) * log32(float32(r.OrigCtx)/(nRot*2*math.Pi)) / (2 * log32(r.FreqBase))
	}
	start := float32(math.Floor(float64(dim(r.BetaFast))))
	end := float32(math.Ceil(float64(dim(r.BetaSlow))))
	return [2]float32{max(0, start), min(float32(r.Dims-1), end)}
}

// apply rotates the first Dims values of one head vector x in place.
func (r *Rope) apply(x, cos, sin []float32) {
	half := r.Dims / 2
	if r.Style == RopeNeox {
		for i := 0; i < half; i++ {
			x0, x1 := x[i], x[i+half]
			x[i] = x0*cos[i] - x1*sin[i]
			x[i+half] = x0*sin[i] + x1*cos[i]
		}
		return
	}
	for i := 0; i < half; i++ {
		x0, x1 := x[2*i], x[2*i+1]
		x[2*i] = x0*cos[i] - x1*sin[i]
		x[2*i+1] = x0*sin[i] + x1*cos[i]
	}
}
