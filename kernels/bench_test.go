package kernels

import (
	"math/rand/v2"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// benchRow returns a quantized weight row of n elements of f's type and a
// matching f32 activation and quantized activation.
func benchRow(b *testing.B, f *Format, n int) (w []byte, x []float32, a []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, n)
	x = make([]float32, n)
	imat := make([]float32, n)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
		x[i] = float32(rng.NormFloat64())
		imat[i] = 1
	}
	wb, _ := f.Type.RowBytes(n)
	w = make([]byte, wb)
	var im []float32
	if f.NeedsImatrix {
		im = imat
	}
	f.Quantize(w, src, im)
	if vd, err := Lookup(f.VecDot); err == nil && f.Dot != nil {
		ab, _ := f.VecDot.RowBytes(n)
		a = make([]byte, ab)
		quantizeCPU(vd, a, x)
	}
	return w, x, a
}

// BenchmarkKernels reports GB/s of weight bytes for dequantize and for both
// dot paths of every registered format (rows of 4096, pure Go).
func BenchmarkKernels(b *testing.B) {
	const n = 4096
	for _, f := range Formats() {
		if f.Quantize == nil || f.Type == gguf.TypeQ8_1 || f.Type == gguf.TypeQ8_K {
			continue
		}
		w, x, a := benchRow(b, f, n)
		if f.Dequantize != nil {
			b.Run(f.Type.String()+"/dequantize", func(b *testing.B) {
				dst := make([]float32, n)
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					f.Dequantize(dst, w)
				}
			})
		}
		if f.Dot != nil && a != nil {
			b.Run(f.Type.String()+"/dot", func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					sink = f.Dot(n, w, a)
				}
			})
		}
		if f.DotF32 != nil {
			b.Run(f.Type.String()+"/dotf32", func(b *testing.B) {
				b.SetBytes(int64(len(w)))
				for b.Loop() {
					sink = f.DotF32(w, x)
				}
			})
		}
	}
}

var sink float32
