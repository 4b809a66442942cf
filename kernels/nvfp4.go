package kernels

import (
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
)

// NVFP4 (ggml-common.h: block_nvfp4): 64 weights per 36-byte block in four
// 16-weight sub-blocks. Bytes 0..3 are the sub-blocks' UE4M3 scales, then
// 8 bytes of E2M1 codes per sub-block; byte j of sub-block s holds weight j
// in its low nibble and weight j+8 in its high nibble. A code decodes to
// kvaluesFP4[code] * ue4m3(scale)/2.

const (
	nvfp4BlockSize  = 64
	nvfp4BlockBytes = 36
	nvfp4SubSize    = 16
)

func init() {
	register(&Format{
		Type:       gguf.TypeNVFP4,
		VecDot:     gguf.TypeQ8_0,
		Dequantize: dequantizeNVFP4,
		// ggml ignores the importance matrix for NVFP4 (quantize_nvfp4).
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeNVFP4(dst, src) },
		Dot:      dotNVFP4,
		DotF32:   dotF32NVFP4,
	})
}

func dequantizeNVFP4(dst []float32, src []byte) {
	for i := 0; i+nvfp4BlockSize <= len(dst); i += nvfp4BlockSize {
		b := src[i/nvfp4BlockSize*nvfp4BlockBytes:][:nvfp4BlockBytes]
		y := dst[i : i+nvfp4BlockSize]
		for s := range 4 {
			d := ue4m3HalfTable[b[s]]
			qs := b[4+8*s:][:8]
			lo, hi := y[16*s:][:8], y[16*s+8:][:8]
			for j, q := range qs {
				lo[j] = kvaluesFP4F32[q&0xf] * d
				hi[j] = kvaluesFP4F32[q>>4] * d
			}
		}
	}
}

// quantizeNVFP4 is quantize_row_nvfp4_ref: per sub-block the scale is
// ue4m3(amax/6), then the nearest FP4 code per weight under the decoded
// scale.
func quantizeNVFP4(dst []byte, src []float32) {
	for i := 0; i+nvfp4BlockSize <= len(src); i += nvfp4BlockSize {
		b := dst[i/nvfp4BlockSize*nvfp4BlockBytes:][:nvfp4BlockBytes]
		for s := range 4 {
			x := src[i+16*s:][:nvfp4SubSize]
			var amax float32
			for _, v := range x {
				if amax < abs32(v) {
					amax = abs32(v)
				}
			}
			ue := f32ToUE4M3(amax / 6)
			b[s] = ue
			d := ue4m3HalfTable[ue]
			qs := b[4+8*s:][:8]
			for j := range qs {
				qs[j] = bestIndexFP4(x[j], d) | bestIndexFP4(x[8+j], d)<<4
			}
		}
	}
}

// dotNVFP4 is ggml_vec_dot_nvfp4_q8_0 as llama.cpp runs it on x86 (the
// AVX2 code of arch/x86/quants.c): one 8-lane accumulator; per block two
// fused multiply-adds, acc = fma(scales, lanes, acc), one per Q8_0 block,
// where lanes 0..3 hold the first sub-block (scale ue4m3(d[0])*y.d) and
// lanes 4..7 the second (lane t = weights 4t..4t+3 of the 32 times their
// codes); hsum_float_8 at the end.
func dotNVFP4(n int, w, a []byte) float32 {
	var acc [8]float32
	var q [32]int8
	for i := 0; i < n/nvfp4BlockSize; i++ {
		b := w[i*nvfp4BlockBytes:][:nvfp4BlockBytes]
		for h := range 2 {
			y := (*[q8_0BlockBytes]byte)(a[(2*i+h)*q8_0BlockBytes:])
			for s := range 2 {
				qs := b[4+8*(2*h+s):][:8]
				for j, c := range qs {
					q[16*s+j] = kvaluesFP4[c&0xf]
					q[16*s+j+8] = kvaluesFP4[c>>4]
				}
			}
			dy := q8_0Scale(y[:])
			s0, s1 := ue4m3HalfTable[b[2*h]]*dy, ue4m3HalfTable[b[2*h+1]]*dy
			lanes := q0Lanes(&q, (*[32]byte)(y[2:]))
			x := [8]float32{float32(lanes[0]), float32(lanes[1]), float32(lanes[2]), float32(lanes[3]),
				float32(lanes[4]), float32(lanes[5]), float32(lanes[6]), float32(lanes[7])}
			sc := [8]float32{s0, s0, s0, s0, s1, s1, s1, s1}
			fmaXY8(&acc, &sc, &x)
		}
	}
	return ggmlfp.Reduce8(&acc)
}

func dotF32NVFP4(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+nvfp4BlockSize <= len(x); i += nvfp4BlockSize {
		b := w[i/nvfp4BlockSize*nvfp4BlockBytes:][:nvfp4BlockBytes]
		xb := x[i : i+nvfp4BlockSize]
		for s := range 4 {
			qs := b[4+8*s:][:8]
			lo, hi := xb[16*s:][:8], xb[16*s+8:][:8]
			var acc float32
			for j, q := range qs {
				acc += float32(kvaluesFP4F32[q&0xf] * lo[j])
				acc += float32(kvaluesFP4F32[q>>4] * hi[j])
			}
			sum += float32(ue4m3HalfTable[b[s]] * acc)
		}
	}
	return sum
}
