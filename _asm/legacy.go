package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Q8_0 activation block (34 bytes): fp16 d, 32 int8.
const q8_0Bytes = 34

// The 32-element formats with one scale per block dotted with Q8_0:
// ggml's AVX2 loops give lane l (of 8) the elements 4l..4l+3 of a block and
// do acc = fma(dx*dy, float(lanes), acc) per block. The integer lanes are
// computed exactly (also for -128 activations, where ggml's sign trick is
// off): with y' = y+128 as unsigned bytes,
//
//	Σ x*y = Σ x*y' - 128*Σ x
//
// where Σ x (per lane) is computed once per weight block and reused for
// every token.

// legacy32 describes how one 32-element format decodes a block.
type legacy32 struct {
	name   string
	doc    []string
	wBlock int
	// decode leaves the block's 32 signed weights in Y0 and the weight
	// scale (f32) broadcast in Y1; constants from setup may be used.
	decode func()
	setup  func()
}

// legacy32AVX512 builds the rows kernel of a 32-element format (AVX512-VL
// and VNNI on 256-bit registers).
func legacy32AVX512(f legacy32) *rowsKernel {
	return &rowsKernel{
		name: f.name, doc: f.doc,
		wBlock: f.wBlock, aBlock: q8_0Bytes, accs: 1,
		prefetch: prefetchLines(f.wBlock),
		setup: func() {
			Comment("Constants: 0x80 bytes (y -> y+128), 0x01 bytes (lane sums of x).")
			VPBROADCASTB(table("bytes80", splat(0x80, 32)), Y31)
			VPBROADCASTB(table("bytes01", splat(0x01, 32)), Y30)
			f.setup()
		},
		decode: func() {
			f.decode()
			Comment("Y2 = -128 * (lane sums of x)")
			VPXORD(Y2, Y2, Y2)
			VPDPBUSD(Y0, Y30, Y2)
			VPSLLD(U8(7), Y2, Y2)
			VPXORD(Y3, Y3, Y3)
			VPSUBD(Y2, Y3, Y2)
		},
		token: func(acc []Op) {
			Comment("lanes = -128*Σx + Σ x*(y+128): exact int32 lanes of Σ x*y")
			VPXORD(Mem{Base: RBX, Disp: 2}, Y31, Y4)
			VMOVDQA64(Y2, Y5)
			VPDPBUSD(Y0, Y4, Y5)
			VCVTDQ2PS(Y5, Y5)
			Comment("acc = fma(dx*dy, float(lanes), acc)")
			VPBROADCASTW(Mem{Base: RBX}, X6)
			VCVTPH2PS(X6, Y6)
			VMULPS(Y6, Y1, Y6)
			accFMA(Y6, Y5, acc[0], Y7)
		},
		finish: finishHsum8,
	}
}

// fp16Scale broadcasts the fp16 at SI+off as f32 into Y1.
func fp16Scale(off int) {
	VPBROADCASTW(Mem{Base: RSI, Disp: off}, X1)
	VCVTPH2PS(X1, Y1)
}

func q8_0AVX512() *rowsKernel {
	return legacy32AVX512(legacy32{
		name: "dotQ8_0AVX512",
		doc: []string{
			"dotQ8_0AVX512 is, for r < rows and t < nt (nt <= 8), with rows of nb blocks:",
			"",
			"\tout[t*ldo+r] = dotQ8_0(nb*32, w[r*nb*34:], a[t*lda:])",
			"",
			"in ggml's AVX2 arithmetic (ggml_vec_dot_q8_0_q8_0): per block, lane l",
			"of eight holds the exact Σ x*y of elements 4l..4l+3 and",
			"acc[l] = fma(dx*dy, float(lane), acc[l]); the result is hsum8(acc).",
		},
		wBlock: 34,
		setup:  func() {},
		decode: func() {
			Comment("Y0 = the 32 int8 weights, Y1 = dx")
			VMOVDQU(Mem{Base: RSI, Disp: 2}, Y0)
			fp16Scale(0)
		},
	})
}

// nibbleSignedMatrices is the VGF2P8AFFINEQB operand (with imm 0xF8) that
// turns the bytes of a 128-bit lane pair into their low nibble minus 8
// (lower 128 bits) and high nibble minus 8 (upper 128 bits), as int8: the
// nibble xor 8, sign-extended from bit 3.
func nibbleSignedMatrices() Mem {
	var b []byte
	for q := 0; q < 4; q++ {
		v := uint64(0x0102040808080808)
		if q >= 2 {
			v = 0x1020408080808080
		}
		for k := 0; k < 8; k++ {
			b = append(b, byte(v>>(8*k)))
		}
	}
	return table("nibbleSignedMatrices", b)
}

// nibbleMatrices256 takes low nibbles in the lower 128 bits and high
// nibbles in the upper 128 (imm 0).
func nibbleMatrices256() Mem {
	var b []byte
	for q := 0; q < 4; q++ {
		v := uint64(0x0102040800000000)
		if q >= 2 {
			v = 0x1020408000000000
		}
		for k := 0; k < 8; k++ {
			b = append(b, byte(v>>(8*k)))
		}
	}
	return table("nibbleMatrices256", b)
}

func q4_0AVX512() *rowsKernel {
	return legacy32AVX512(legacy32{
		name: "dotQ4_0AVX512",
		doc: []string{
			"dotQ4_0AVX512 is dotQ8_0AVX512 for Q4_0 weights (ggml_vec_dot_q4_0_q8_0):",
			"x = nibble - 8 (byte j: element j low nibble, element j+16 high).",
		},
		wBlock: 18,
		setup: func() {
			VMOVDQU64(nibbleSignedMatrices(), Y29)
		},
		decode: func() {
			Comment("Y0 = the 32 weights nibble-8, Y1 = dx")
			VBROADCASTI32X4(Mem{Base: RSI, Disp: 2}, Y0)
			VGF2P8AFFINEQB(U8(0xf8), Y29, Y0, Y0)
			fp16Scale(0)
		},
	})
}

func q5_0AVX512() *rowsKernel {
	return legacy32AVX512(legacy32{
		name: "dotQ5_0AVX512",
		doc: []string{
			"dotQ5_0AVX512 is dotQ8_0AVX512 for Q5_0 weights (ggml_vec_dot_q5_0_q8_0):",
			"x = (nibble | fifth bit << 4) - 16, the fifth bits in the 32-bit qh.",
		},
		wBlock: 22,
		setup: func() {
			VMOVDQU64(nibbleMatrices256(), Y29)
			VPBROADCASTB(table("bytesF0", []byte{0xf0}), Y28)
		},
		decode: func() {
			Comment("Y0 = nibble | (fifth bit ? 0 : 0xF0), Y1 = dx")
			VBROADCASTI32X4(Mem{Base: RSI, Disp: 6}, Y0)
			VGF2P8AFFINEQB(U8(0), Y29, Y0, Y0)
			MOVL(Mem{Base: RSI, Disp: 2}, EAX)
			KMOVD(EAX, K3)
			VPMOVM2B(K3, Y1)
			VPTERNLOGD(U8(0xf2), Y28, Y1, Y0) // Y0 |= ~Y1 & 0xF0
			fp16Scale(0)
		},
	})
}

// Q8_1 activation block (36 bytes): fp16 d, fp16 s = d*Σq, 32 int8.
const q8_1Bytes = 36

func q4_1AVX512() *rowsKernel {
	return &rowsKernel{
		name: "dotQ4_1AVX512",
		doc: []string{
			"dotQ4_1AVX512 is, for r < rows and t < nt (nt <= 8), with rows of nb blocks:",
			"",
			"\tout[t*ldo+r] = dotQ4_1(nb*32, w[r*nb*20:], a[t*lda:])",
			"",
			"in ggml's AVX2 arithmetic (ggml_vec_dot_q4_1_q8_1): lane l of eight holds",
			"Σ nibble*y of elements 4l..4l+3, acc[l] = fma(dx*dy, float(lane), acc[l]),",
			"and the scalar summs = fma(m, s, summs) per block; the result is",
			"hsum8(acc) + summs.",
		},
		wBlock: 20, aBlock: q8_1Bytes, accs: 2,
		prefetch: prefetchLines(20),
		setup: func() {
			VMOVDQU64(nibbleMatrices256(), Y29)
		},
		decode: func() {
			Comment("Y0 = the 32 nibbles, Y1 = dx, X9 = m")
			VBROADCASTI32X4(Mem{Base: RSI, Disp: 4}, Y0)
			VGF2P8AFFINEQB(U8(0), Y29, Y0, Y0)
			fp16Scale(0)
			VPBROADCASTW(Mem{Base: RSI, Disp: 2}, X9)
			VCVTPH2PS(X9, X9)
		},
		token: func(acc []Op) {
			Comment("lanes = Σ nibble*y (unsigned x signed, exact); acc = fma(dx*dy, lanes, acc)")
			VPXORD(Y5, Y5, Y5)
			VPDPBUSD(Mem{Base: RBX, Disp: 4}, Y0, Y5)
			VCVTDQ2PS(Y5, Y5)
			VPBROADCASTW(Mem{Base: RBX}, X6)
			VCVTPH2PS(X6, Y6)
			VMULPS(Y6, Y1, Y6)
			accFMA(Y6, Y5, acc[0], Y7)
			Comment("summs = fma(m, s, summs)")
			VPBROADCASTW(Mem{Base: RBX, Disp: 2}, X7)
			VCVTPH2PS(X7, X7)
			accumulateSS(VFMADD231SS, X7, X9, acc[1], X8)
		},
		finish: func(acc []Op) {
			finishHsum8(acc)
			loadAcc(acc[1], Y3, true)
			VADDSS(X3, X1, X1)
		},
	}
}
