package kernels

import (
	"encoding/binary"
	"math"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
)

// Q1_0 (ggml-common.h: block_q1_0): 128 weights per 18-byte block, an fp16
// scale d followed by one sign bit per weight (bit j%8 of byte j/8; set means
// +d, clear means -d). d is the mean absolute value of the block.

const (
	q1_0BlockSize  = 128
	q1_0BlockBytes = 18
)

func init() {
	register(&Format{
		Type:       gguf.TypeQ1_0,
		VecDot:     gguf.TypeQ8_0,
		Dequantize: dequantizeQ1_0,
		// ggml ignores the importance matrix for Q1_0 (quantize_q1_0).
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeQ1_0(dst, src) },
		Dot:      dotQ1_0,
		DotF32:   dotF32Q1_0,
	})
}

func dequantizeQ1_0(dst []float32, src []byte) {
	for i := 0; i+q1_0BlockSize <= len(dst); i += q1_0BlockSize {
		b := src[i/q1_0BlockSize*q1_0BlockBytes:][:q1_0BlockBytes]
		d := FP16ToF32(binary.LittleEndian.Uint16(b))
		// Clear bits give -d: flip the sign bit of d (C's neg_d = -d).
		pos := math.Float32bits(d)
		y := dst[i : i+q1_0BlockSize]
		for j, q := range b[2:] {
			yy := y[j*8:][:8]
			m := uint32(^q)
			yy[0] = math.Float32frombits(pos ^ (m&1)<<31)
			yy[1] = math.Float32frombits(pos ^ (m>>1&1)<<31)
			yy[2] = math.Float32frombits(pos ^ (m>>2&1)<<31)
			yy[3] = math.Float32frombits(pos ^ (m>>3&1)<<31)
			yy[4] = math.Float32frombits(pos ^ (m>>4&1)<<31)
			yy[5] = math.Float32frombits(pos ^ (m>>5&1)<<31)
			yy[6] = math.Float32frombits(pos ^ (m>>6&1)<<31)
			yy[7] = math.Float32frombits(pos ^ (m>>7&1)<<31)
		}
	}
}

// quantizeQ1_0 is quantize_row_q1_0_ref: d = sum|x|/128, bit set for x >= 0
// (so -0 counts as positive and NaN as negative).
func quantizeQ1_0(dst []byte, src []float32) {
	for i := 0; i+q1_0BlockSize <= len(src); i += q1_0BlockSize {
		x := src[i : i+q1_0BlockSize]
		b := dst[i/q1_0BlockSize*q1_0BlockBytes:][:q1_0BlockBytes]
		var sumAbs float32
		for _, v := range x {
			sumAbs += abs32(v)
		}
		binary.LittleEndian.PutUint16(b, F32ToFP16(sumAbs/q1_0BlockSize))
		qs := b[2:]
		for j := range qs {
			var q uint8
			for k, v := range x[j*8 : j*8+8] {
				if v >= 0 {
					q |= 1 << k
				}
			}
			qs[j] = q
		}
	}
}

// dotQ1_0 is ggml_vec_dot_q1_0_q8_0_generic: each weight block spans four
// Q8_0 blocks; sumi += d8*isum per Q8_0 block, then sum += d*sumi. The
// integer sum of ±y is 2*(sum of y where the bit is set) - (sum of all y),
// each summed eight bytes at a time.
// dotQ1_0 is ggml_vec_dot_q1_0_q8_0 as llama.cpp runs it on x86 (the AVX2
// code of arch/x86/quants.c): per block, the four Q8_0 blocks' codes with
// the weights' signs applied are summed in eight 32-bit lanes (lane t =
// elements 4t..4t+3), blk = y0.d*lanes0 then blk = fma(yK.d, lanesK, blk)
// for K = 1..3, and acc = fma(d, blk, acc); hsum_float_8 at the end.
func dotQ1_0(n int, w, a []byte) float32 {
	var acc [8]float32
	for i := 0; i < n/q1_0BlockSize; i++ {
		b := w[i*q1_0BlockBytes:][:q1_0BlockBytes]
		ab := a[i*4*q8_0BlockBytes:][:4*q8_0BlockBytes]
		var blk [8]float32
		for k := 0; k < 4; k++ {
			y := ab[k*q8_0BlockBytes:][:q8_0BlockBytes]
			bits := b[2+4*k:][:4]
			qy := y[2:][:32]
			var x [8]float32
			for t := range x {
				v := uint64(binary.LittleEndian.Uint32(qy[4*t:]))
				m := bitsToBytes[bits[t/2]] >> (32 * (t % 2)) & 0xffffffff
				x[t] = float32(2*sumInt8x8(v&m) - sumInt8x8(v))
			}
			dy := q8_0Scale(y)
			if k == 0 {
				for t := range blk {
					blk[t] = dy * x[t]
				}
				continue
			}
			d := [8]float32{dy, dy, dy, dy, dy, dy, dy, dy}
			fmaXY8(&blk, &d, &x)
		}
		d0 := FP16ToF32(binary.LittleEndian.Uint16(b))
		d := [8]float32{d0, d0, d0, d0, d0, d0, d0, d0}
		fmaXY8(&acc, &d, &blk)
	}
	return ggmlfp.Reduce8(&acc)
}

// bitsToBytes widens each bit of a byte to a 0x00/0xff byte of a uint64
// (bit j to byte j).
var bitsToBytes = func() (t [256]uint64) {
	for i := range t {
		for j := range 8 {
			if i>>j&1 != 0 {
				t[i] |= 0xff << (8 * j)
			}
		}
	}
	return t
}()

// sumInt8x8 returns the sum of the eight bytes of u read as int8: the sum
// of the bytes as unsigned values less 256 for every negative one.
func sumInt8x8(u uint64) int32 {
	const lanes16 = 0x00ff00ff00ff00ff
	const ones8 = 0x0101010101010101
	s := u&lanes16 + u>>8&lanes16                // four 16-bit partial sums
	total := int32(s * 0x0001000100010001 >> 48) // at most 8*255
	neg := int32((u >> 7 & ones8) * ones8 >> 56) // count of sign bits
	return total - 256*neg
}

func dotF32Q1_0(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+q1_0BlockSize <= len(x); i += q1_0BlockSize {
		b := w[i/q1_0BlockSize*q1_0BlockBytes:][:q1_0BlockBytes]
		xb := x[i : i+q1_0BlockSize]
		// Flip the sign of x where the bit is clear; four partial sums.
		var s0, s1, s2, s3 float32
		for j, q := range b[2:] {
			xx := xb[j*8:][:8]
			m := uint32(^q)
			s0 += math.Float32frombits(math.Float32bits(xx[0]) ^ (m&1)<<31)
			s1 += math.Float32frombits(math.Float32bits(xx[1]) ^ (m>>1&1)<<31)
			s2 += math.Float32frombits(math.Float32bits(xx[2]) ^ (m>>2&1)<<31)
			s3 += math.Float32frombits(math.Float32bits(xx[3]) ^ (m>>3&1)<<31)
			s0 += math.Float32frombits(math.Float32bits(xx[4]) ^ (m>>4&1)<<31)
			s1 += math.Float32frombits(math.Float32bits(xx[5]) ^ (m>>5&1)<<31)
			s2 += math.Float32frombits(math.Float32bits(xx[6]) ^ (m>>6&1)<<31)
			s3 += math.Float32frombits(math.Float32bits(xx[7]) ^ (m>>7&1)<<31)
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b)) * ((s0 + s1) + (s2 + s3)))
	}
	return sum
}
