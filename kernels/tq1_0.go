package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// TQ1_0 (ggml-common.h: block_tq1_0): ternary weights, 256 per 54-byte
// block. Bytes 0..47 (qs) pack five trits each and bytes 48..51 (qh) four,
// then the fp16 scale d at 52. A byte holds base-3 digits t0..t4 (t0 most
// significant) as ceil(value*256/243), so digit n is recovered by
// ((uint8(q*3^n)) * 3) >> 8. Weight order: qs[0:32] digit n is weight
// 32n+m, qs[32:48] digit n is weight 160+16n+m, qh[j] digit n is weight
// 240+4n+j. Digit t decodes to (t-1)*d.

const (
	tq1BlockSize  = 256
	tq1BlockBytes = 54
	tq1QhOffset   = 48
	tq1DOffset    = 52
)

// tritLevels maps a decoded trit (0, 1, 2) to its weight -1, 0, +1.
var tritLevels = [4]float32{-1, 0, 1, 0}

// tq1Trits returns the five base-3 digits of the packed byte q, most
// significant first: digit n is ((q*3^n mod 256) * 3) >> 8.
func tq1Trits(q uint8) (t0, t1, t2, t3, t4 uint32) {
	return uint32(q) * 3 >> 8, uint32(q*3) * 3 >> 8, uint32(q*9) * 3 >> 8,
		uint32(q*27) * 3 >> 8, uint32(q*81) * 3 >> 8
}

func init() {
	register(&Format{
		Type:       gguf.TypeTQ1_0,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeTQ1_0,
		// ggml ignores the importance matrix for TQ1_0 (quantize_tq1_0).
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeTQ1_0(dst, src) },
		Dot:      dotTQ1_0,
		DotF32:   dotF32TQ1_0,
	})
}

func dequantizeTQ1_0(dst []float32, src []byte) {
	for i := 0; i+tq1BlockSize <= len(dst); i += tq1BlockSize {
		b := src[i/tq1BlockSize*tq1BlockBytes:][:tq1BlockBytes]
		d := FP16ToF32(binary.LittleEndian.Uint16(b[tq1DOffset:]))
		y := dst[i : i+tq1BlockSize]
		tq1Spread(y[0:160], b[0:32], d)
		tq1Spread(y[160:240], b[32:48], d)
		y0, y1, y2, y3 := y[240:244], y[244:248], y[248:252], y[252:256]
		for j, q := range b[tq1QhOffset:][:4] {
			t0, t1, t2, t3, _ := tq1Trits(q)
			y0[j] = tritLevels[t0&3] * d
			y1[j] = tritLevels[t1&3] * d
			y2[j] = tritLevels[t2&3] * d
			y3[j] = tritLevels[t3&3] * d
		}
	}
}

// tq1Spread decodes the five-trit bytes qs into y: digit n of qs[m] is
// y[n*len(qs)+m].
func tq1Spread(y []float32, qs []byte, d float32) {
	k := len(qs)
	y0, y1, y2, y3, y4 := y[:k], y[k:2*k], y[2*k:3*k], y[3*k:4*k], y[4*k:5*k]
	for m, q := range qs {
		t0, t1, t2, t3, t4 := tq1Trits(q)
		y0[m] = tritLevels[t0&3] * d
		y1[m] = tritLevels[t1&3] * d
		y2[m] = tritLevels[t2&3] * d
		y3[m] = tritLevels[t3&3] * d
		y4[m] = tritLevels[t4&3] * d
	}
}

// ternaryScale returns the absolute maximum of x with C's MAX(a, b)
// semantics (a NaN maximum is replaced by the next element) and its inverse
// (0 when the maximum is 0), as quantize_row_tq{1,2}_0_ref compute them.
func ternaryScale(x []float32) (d, id float32) {
	for _, v := range x {
		d = maxNaNLikeC(d, abs32(v))
	}
	if d != 0 {
		id = 1 / d
	}
	return d, id
}

// ternaryDigit returns lroundf(v*id)+1 truncated to int: 0, 1 or 2 for
// normal input.
func ternaryDigit(v, id float32) int32 { return lroundfLow32(v*id) + 1 }

// tq1Pack packs the trits of x[0], x[stride], ... (count of them, most
// significant first), appends pad zero trits and returns the ceiling of
// value*256/243 as ggml stores it.
func tq1Pack(x []float32, stride, count, pad int, id float32) uint8 {
	var q uint8
	for k := range count {
		q = q*3 + uint8(ternaryDigit(x[k*stride], id))
	}
	for range pad {
		q *= 3
	}
	return uint8((uint32(q)*256 + 242) / 243)
}

// quantizeTQ1_0 is quantize_row_tq1_0_ref.
func quantizeTQ1_0(dst []byte, src []float32) {
	for i := 0; i+tq1BlockSize <= len(src); i += tq1BlockSize {
		x := src[i : i+tq1BlockSize]
		b := dst[i/tq1BlockSize*tq1BlockBytes:][:tq1BlockBytes]
		d, id := ternaryScale(x)
		binary.LittleEndian.PutUint16(b[tq1DOffset:], F32ToFP16(d))
		for m := range 32 {
			b[m] = tq1Pack(x[m:], 32, 5, 0, id)
		}
		for m := range 16 {
			b[32+m] = tq1Pack(x[160+m:], 16, 5, 0, id)
		}
		for j := range 4 {
			b[tq1QhOffset+j] = tq1Pack(x[240+j:], 4, 4, 1, id)
		}
	}
}

// dotTQ1_0 is ggml_vec_dot_tq1_0_q8_K as llama.cpp runs it on x86 (the
// AVX2 code, not the scalar generic C): see ternaryDot.
func dotTQ1_0(n int, w, a []byte) float32 { return ternaryDot(n, w, a, true) }

// decodeTQ1_0 fills q with the block's 256 trits (0, 1, 2 for -1, 0, +1)
// in weight order and returns its scale.
func decodeTQ1_0(b []byte, q *[256]uint8) float32 {
	tq1SpreadCodes(q[0:160], b[0:32])
	tq1SpreadCodes(q[160:240], b[32:48])
	q0, q1, q2, q3 := q[240:244], q[244:248], q[248:252], q[252:256]
	for j, c := range b[tq1QhOffset:][:4] {
		t0, t1, t2, t3, _ := tq1Trits(c)
		q0[j], q1[j], q2[j], q3[j] = uint8(t0), uint8(t1), uint8(t2), uint8(t3)
	}
	return FP16ToF32(binary.LittleEndian.Uint16(b[tq1DOffset:]))
}

// tq1SpreadCodes is tq1Spread for the trits themselves.
func tq1SpreadCodes(q []uint8, qs []byte) {
	k := len(qs)
	q0, q1, q2, q3, q4 := q[:k], q[k:2*k], q[2*k:3*k], q[3*k:4*k], q[4*k:5*k]
	for m, c := range qs {
		t0, t1, t2, t3, t4 := tq1Trits(c)
		q0[m], q1[m], q2[m], q3[m], q4[m] = uint8(t0), uint8(t1), uint8(t2), uint8(t3), uint8(t4)
	}
}

func dotF32TQ1_0(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+tq1BlockSize <= len(x); i += tq1BlockSize {
		b := w[i/tq1BlockSize*tq1BlockBytes:][:tq1BlockBytes]
		xb := x[i : i+tq1BlockSize]
		s := tq1DotF32(xb[0:160], b[0:32]) + tq1DotF32(xb[160:240], b[32:48])
		x0, x1, x2, x3 := xb[240:244], xb[244:248], xb[248:252], xb[252:256]
		for j, q := range b[tq1QhOffset:][:4] {
			t0, t1, t2, t3, _ := tq1Trits(q)
			s += float32(tritLevels[t0&3]*x0[j]) + float32(tritLevels[t1&3]*x1[j]) +
				float32(tritLevels[t2&3]*x2[j]) + float32(tritLevels[t3&3]*x3[j])
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b[tq1DOffset:])) * s)
	}
	return sum
}

// tq1DotF32 returns sum (t-1)*x over the five-trit bytes qs and x laid out
// as in tq1Spread, in five partial sums.
func tq1DotF32(x []float32, qs []byte) float32 {
	k := len(qs)
	x0, x1, x2, x3, x4 := x[:k], x[k:2*k], x[2*k:3*k], x[3*k:4*k], x[4*k:5*k]
	var s0, s1, s2, s3, s4 float32
	for m, q := range qs {
		t0, t1, t2, t3, t4 := tq1Trits(q)
		s0 += float32(tritLevels[t0&3] * x0[m])
		s1 += float32(tritLevels[t1&3] * x1[m])
		s2 += float32(tritLevels[t2&3] * x2[m])
		s3 += float32(tritLevels[t3&3] * x3[m])
		s4 += float32(tritLevels[t4&3] * x4[m])
	}
	return (s0 + s1) + (s2 + s3) + s4
}
