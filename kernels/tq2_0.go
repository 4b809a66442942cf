package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// TQ2_0 (ggml-common.h: block_tq2_0): ternary weights, 256 per 66-byte
// block: 64 bytes of 2-bit codes then the fp16 scale d at 64. In each
// 32-byte half h, bits 2l of byte 32h+m hold weight 128h+32l+m. Code q
// decodes to (q-1)*d; ggml writes only 0..2 but decodes 3 as 2d.

const (
	tq2BlockSize  = 256
	tq2BlockBytes = 66
	tq2DOffset    = 64
)

func init() {
	register(&Format{
		Type:       gguf.TypeTQ2_0,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeTQ2_0,
		// ggml ignores the importance matrix for TQ2_0 (quantize_tq2_0).
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeTQ2_0(dst, src) },
		Dot:      dotTQ2_0,
		DotF32:   dotF32TQ2_0,
	})
}

func dequantizeTQ2_0(dst []float32, src []byte) {
	for i := 0; i+tq2BlockSize <= len(dst); i += tq2BlockSize {
		b := src[i/tq2BlockSize*tq2BlockBytes:][:tq2BlockBytes]
		d := FP16ToF32(binary.LittleEndian.Uint16(b[tq2DOffset:]))
		for h := range 2 {
			y := dst[i+128*h:][:128]
			y0, y1, y2, y3 := y[0:32], y[32:64], y[64:96], y[96:128]
			for m, q := range b[32*h:][:32] {
				y0[m] = q2Levels[q&3] * d
				y1[m] = q2Levels[q>>2&3] * d
				y2[m] = q2Levels[q>>4&3] * d
				y3[m] = q2Levels[q>>6] * d
			}
		}
	}
}

// quantizeTQ2_0 is quantize_row_tq2_0_ref.
func quantizeTQ2_0(dst []byte, src []float32) {
	for i := 0; i+tq2BlockSize <= len(src); i += tq2BlockSize {
		x := src[i : i+tq2BlockSize]
		b := dst[i/tq2BlockSize*tq2BlockBytes:][:tq2BlockBytes]
		d, id := ternaryScale(x)
		binary.LittleEndian.PutUint16(b[tq2DOffset:], F32ToFP16(d))
		for h := range 2 {
			xh := x[128*h:][:128]
			for m := range 32 {
				var q uint8
				for l := range 4 {
					q += uint8(ternaryDigit(xh[32*l+m], id)&3) << (2 * l)
				}
				b[32*h+m] = q
			}
		}
	}
}

// dotTQ2_0 is ggml_vec_dot_tq2_0_q8_K as llama.cpp runs it on x86 (the
// AVX2 code, not the scalar generic C): see ternaryDot.
func dotTQ2_0(n int, w, a []byte) float32 { return ternaryDot(n, w, a, false) }

// decodeTQ2_0 fills q with the block's 256 codes (0..3, as stored) in
// weight order and returns its scale.
func decodeTQ2_0(b []byte, q *[256]uint8) float32 {
	for h := range 2 {
		y := q[128*h:][:128]
		y0, y1, y2, y3 := y[0:32], y[32:64], y[64:96], y[96:128]
		for m, c := range b[32*h:][:32] {
			y0[m], y1[m], y2[m], y3[m] = c&3, c>>2&3, c>>4&3, c>>6
		}
	}
	return FP16ToF32(binary.LittleEndian.Uint16(b[tq2DOffset:]))
}

func dotF32TQ2_0(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+tq2BlockSize <= len(x); i += tq2BlockSize {
		b := w[i/tq2BlockSize*tq2BlockBytes:][:tq2BlockBytes]
		var s0, s1, s2, s3 float32
		for h := range 2 {
			xh := x[i+128*h:][:128]
			x0, x1, x2, x3 := xh[0:32], xh[32:64], xh[64:96], xh[96:128]
			for m, q := range b[32*h:][:32] {
				s0 += float32(q2Levels[q&3] * x0[m])
				s1 += float32(q2Levels[q>>2&3] * x1[m])
				s2 += float32(q2Levels[q>>4&3] * x2[m])
				s3 += float32(q2Levels[q>>6] * x3[m])
			}
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b[tq2DOffset:])) * ((s0 + s1) + (s2 + s3)))
	}
	return sum
}
