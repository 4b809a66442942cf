package synth

import (
	"math"
	"math/rand/v2"
)

// Normal samples come from Marsaglia and Tsang's ziggurat ("The Ziggurat
// Method for Generating Random Variables", J. Stat. Softw. 5(8), 2000)
// with 128 layers, fed by math/rand/v2's PCG. Each 64-bit draw yields two
// samples: per 32-bit half, the low 7 bits pick the layer and the high 25
// bits are a signed position in it (float32 carries 24 bits, so nothing is
// lost). 98.8% of samples take the fast path: one multiply and one compare.

const (
	zigR     = 3.442619855899 // start of the tail
	zigScale = 1 << 24        // range of the 25-bit signed position
)

var zigK [128]uint32 // |j| < k[i]: inside layer i's rectangle
var zigW [128]float32
var zigF [128]float32

func init() {
	const v = 9.91256303526217e-3 // area of each layer
	dn, tn := zigR, zigR
	q := v / math.Exp(-0.5*dn*dn)
	zigK[0] = uint32(dn / q * zigScale)
	zigK[1] = 0
	zigW[0] = float32(q / zigScale)
	zigW[127] = float32(dn / zigScale)
	zigF[0] = 1
	zigF[127] = float32(math.Exp(-0.5 * dn * dn))
	for i := 126; i >= 1; i-- {
		dn = math.Sqrt(-2 * math.Log(v/dn+math.Exp(-0.5*dn*dn)))
		zigK[i+1] = uint32(dn / tn * zigScale)
		tn = dn
		zigF[i] = float32(math.Exp(-0.5 * dn * dn))
		zigW[i] = float32(dn / zigScale)
	}
}

// rng is a PCG stream with the samplers synth needs. Not safe for
// concurrent use; each row of each tensor gets its own stream.
type rng struct{ pcg rand.PCG }

// newRNG returns the stream for (seed, key, row): the same triple gives the
// same numbers on any machine and in any goroutine.
func newRNG(seed, key uint64, row int) rng {
	var r rng
	r.pcg.Seed(seed^mix64(key), mix64(key+uint64(row)*0x9e3779b97f4a7c15))
	return r
}

// mix64 is SplitMix64's finaliser: a bijection that spreads nearby keys.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// uniform returns a float64 in [0, 1).
func (r *rng) uniform() float64 { return float64(r.pcg.Uint64()>>11) / (1 << 53) }

// normals fills dst with N(0, std²) samples. The fast path of sample is
// written out here so the loop inlines it.
func (r *rng) normals(dst []float32, std float32) {
	for i := 0; i < len(dst); i += 2 {
		u := r.pcg.Uint64()
		for k := 0; k < 2 && i+k < len(dst); k++ {
			h := uint32(u)
			u >>= 32
			idx := h & 127
			j := int32(h) >> 7
			aj := uint32(j)
			if j < 0 {
				aj = uint32(-j)
			}
			x := float32(j) * zigW[idx]
			if aj >= zigK[idx] {
				x = r.slow(j, idx)
			}
			dst[i+k] = x * std
		}
	}
}

// slow is the ziggurat's rejection step for samples outside a layer's
// rectangle (about 1.2% of them), with fresh bits for every retry.
func (r *rng) slow(j int32, idx uint32) float32 {
	for {
		x := float64(j) * float64(zigW[idx])
		if idx == 0 {
			// the tail beyond zigR, by Marsaglia's exponential method
			for {
				x = -math.Log(1-r.uniform()) / zigR
				y := -math.Log(1 - r.uniform())
				if y+y >= x*x {
					break
				}
			}
			if j > 0 {
				return float32(zigR + x)
			}
			return float32(-zigR - x)
		}
		if float64(zigF[idx])+r.uniform()*float64(zigF[idx-1]-zigF[idx]) < math.Exp(-0.5*x*x) {
			return float32(x)
		}
		h := uint32(r.pcg.Uint64())
		idx = h & 127
		j = int32(h) >> 7
		aj := uint32(j)
		if j < 0 {
			aj = uint32(-j)
		}
		if aj < zigK[idx] {
			return float32(j) * zigW[idx]
		}
	}
}

// uniforms fills dst with samples of U(lo, hi).
func (r *rng) uniforms(dst []float32, lo, hi float32) {
	for i := range dst {
		dst[i] = lo + (hi-lo)*float32(r.pcg.Uint64()>>40)/(1<<24)
	}
}
