package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The AVX2 kernels (Haswell and later, and AVX-512 CPUs without VNNI or
// GFNI) follow ggml's AVX2 loops literally: every token decodes the weight
// block again (only Y0-Y15, so nothing is kept across tokens), and the
// integer lanes are the same as the AVX-512 kernels'.

// q4kScaleCtlAVX2 returns, per sub-block j, the VPSHUFB control turning the
// 16-byte scale vector (in both 128-bit lanes) into 16 words of scale j.
func q4kScaleCtlAVX2() []byte {
	var b []byte
	for j := 0; j < 8; j++ {
		pos := byte(j)
		if j >= 4 {
			pos = byte(8 + j - 4)
		}
		for w := 0; w < 16; w++ {
			b = append(b, pos, 0x80)
		}
	}
	return b
}

// q4kUnpackScalesAVX2 leaves [sc0..3, m0..3, sc4..7, m4..7] in both lanes
// of dst (like q4kUnpackScales, without AVX-512). Clobbers AX, DX, R14.
func q4kUnpackScalesAVX2(dst VecPhysical) {
	k3f, k03, k0f := kmasks()
	MOVQ(Mem{Base: RSI, Disp: 4}, RAX)
	MOVL(Mem{Base: RSI, Disp: 12}, EDX)
	ANDQ(k3f, RAX)
	MOVQ(RDX, R14)
	SHLQ(U8(28), R14)
	ORQ(R14, RDX)
	ANDQ(k0f, RDX)
	MOVQ(Mem{Base: RSI, Disp: 4}, R14)
	SHRQ(U8(6), R14)
	ANDQ(k03, R14)
	SHLQ(U8(4), R14)
	ORQ(R14, RDX)
	VMOVQ(RAX, dst.AsX())
	VPINSRQ(U8(1), RDX, dst.AsX(), dst.AsX())
	VINSERTI128(U8(1), dst.AsX(), dst, dst)
}

func q4kAVX2() *rowsKernel {
	var ctl Mem
	return &rowsKernel{
		name: "dotQ4KAVX2",
		doc: []string{
			"dotQ4KAVX2 is dotQ4KAVX512 on AVX2 (ggml_vec_dot_q4_K_q8_K's AVX2 loop):",
			"per 32-byte chunk, maddubs of the low and high nibbles with q8, madd with",
			"the sub-block scale words; the same lanes, FMAs and reductions.",
		},
		wBlock: q4kBytes, aBlock: q8kBytes, accs: 2, vex: true,
		prefetch: prefetchLines(q4kBytes),
		setup: func() {
			ctl = table("q4kScaleCtlAVX2", q4kScaleCtlAVX2())
			_, mins := q4kScaleTables()
			VPBROADCASTB(table("nibbleMaskB", []byte{0x0f}), Y15)
			VMOVDQU(table("q4kMinCtl", mins), X14)
		},
		decode: func() {
			Comment("Y9 = d, X8 = dmin, Y11 = scales and mins, X10 = min words")
			VPBROADCASTW(Mem{Base: RSI}, X9)
			VCVTPH2PS(X9, Y9)
			VPBROADCASTW(Mem{Base: RSI, Disp: 2}, X8)
			VCVTPH2PS(X8, X8)
			q4kUnpackScalesAVX2(Y11)
			VPSHUFB(X14, X11, X10)
		},
		token: func(acc []Op) {
			for c := 0; c < 4; c++ {
				Commentf("chunk %d: low nibbles x q8[%d:], high nibbles x q8[%d:], times scales", c, 64*c, 64*c+32)
				VMOVDQU(Mem{Base: RSI, Disp: 16 + 32*c}, Y0)
				VPAND(Y15, Y0, Y1)
				VPSRLW(U8(4), Y0, Y0)
				VPAND(Y15, Y0, Y0)
				VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 64*c}, Y1, Y1)
				VPSHUFB(ctl.Offset(64*c), Y11, Y2)
				VPMADDWD(Y2, Y1, Y1)
				VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 64*c + 32}, Y0, Y0)
				VPSHUFB(ctl.Offset(64*c+32), Y11, Y2)
				VPMADDWD(Y2, Y0, Y0)
				if c == 0 {
					VPADDD(Y1, Y0, Y3)
				} else {
					VPADDD(Y1, Y0, Y0)
					VPADDD(Y0, Y3, Y3)
				}
			}
			VCVTDQ2PS(Y3, Y3)
			VBROADCASTSS(Mem{Base: RBX}, Y4)
			VMULPS(Y9, Y4, Y5)
			accFMA(Y5, Y3, acc[0], Y6)
			Comment("Mins: accm -= (dmin*y.d) * float(madd(mins, pairwise bsums))")
			VMOVDQU(Mem{Base: RBX, Disp: q8kBsums}, X0)
			VPHADDW(Mem{Base: RBX, Disp: q8kBsums + 16}, X0, X0)
			VPMADDWD(X10, X0, X0)
			VCVTDQ2PS(X0, X0)
			VMULPS(X8, X4, X5)
			accumulate(VFNMADD231PS, X5, X0, acc[1], Y6, true)
		},
		finish: func(acc []Op) {
			finishHsum8(acc)
			loadAcc(acc[1], Y3, true)
			hsum4(X3, X2)
			VADDSS(X3, X1, X1)
		},
	}
}

// q6kScaleShuffle is ggml's get_scale_shuffle table: entry i is 8 copies
// of byte 2i then 8 of byte 2i+1.
func q6kScaleShuffle() []byte {
	var b []byte
	for i := 0; i < 8; i++ {
		b = append(b, splat(byte(2*i), 8)...)
		b = append(b, splat(byte(2*i+1), 8)...)
	}
	return b
}

func q6kAVX2() *rowsKernel {
	var shuf Mem
	return &rowsKernel{
		name: "dotQ6KAVX2",
		doc: []string{
			"dotQ6KAVX2 is dotQ6KAVX512 on AVX2, ggml_vec_dot_q6_K_q8_K's AVX2 loop.",
		},
		wBlock: q6kBytes, aBlock: q8kBytes, accs: 1, vex: true,
		prefetch: prefetchLines(q6kBytes),
		setup: func() {
			shuf = table("q6kScaleShuffle", q6kScaleShuffle())
			VPBROADCASTB(table("nibbleMaskB", []byte{0x0f}), Y15)
			VPBROADCASTB(table("byte03", []byte{0x03}), Y14)
		},
		decode: func() {
			Comment("Y9 = d, X11 = the 16 int8 scales, Y10 = them as words")
			VPBROADCASTW(Mem{Base: RSI, Disp: q6kD}, X9)
			VCVTPH2PS(X9, Y9)
			VMOVDQU(Mem{Base: RSI, Disp: q6kScales}, X11)
			VPMOVSXBW(X11, Y10)
		},
		token: func(acc []Op) {
			Comment("Y3 = -32*(bsums x scales) lane by lane")
			VPMADDWD(Mem{Base: RBX, Disp: q8kBsums}, Y10, Y3)
			VPSLLD(U8(5), Y3, Y3)
			VPXOR(Y4, Y4, Y4)
			VPSUBD(Y3, Y4, Y3)
			for j := 0; j < 2; j++ {
				Commentf("half %d: four groups of 32 six-bit levels", j)
				VMOVDQU(Mem{Base: RSI, Disp: q6kQh + 32*j}, Y2) // qh
				for k := 0; k < 4; k++ {
					ql := Mem{Base: RSI, Disp: 64*j + 32*(k%2)}
					// low 4 bits
					VMOVDQU(ql, Y0)
					if k >= 2 {
						VPSRLW(U8(4), Y0, Y0)
					}
					VPAND(Y15, Y0, Y0)
					// high 2 bits: (qh >> 2k) & 3, << 4
					VPSRLW(U8(2*k), Y2, Y1)
					VPAND(Y14, Y1, Y1)
					VPSLLW(U8(4), Y1, Y1)
					VPOR(Y1, Y0, Y0)
					VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 128*j + 32*k}, Y0, Y0)
					VPSHUFB(shuf.Offset(16*(4*j+k)), X11, X1)
					VPMOVSXBW(X1, Y1)
					VPMADDWD(Y1, Y0, Y0)
					VPADDD(Y0, Y3, Y3)
				}
			}
			VCVTDQ2PS(Y3, Y3)
			VBROADCASTSS(Mem{Base: RBX}, Y4)
			VMULPS(Y9, Y4, Y5)
			accFMA(Y5, Y3, acc[0], Y6)
		},
		finish: finishHsum8,
	}
}

// legacy32AVX2 builds the AVX2 kernel of a 32-element format dotted with
// Q8_0: decode leaves the 32 signed weights in Y8 and dx in Y9; the lanes
// are exact sums of sign-extended 16-bit products (vpmaddwd, then adjacent
// pairs), acc = fma(dx*dy, lanes, acc).
func legacy32AVX2(name string, doc []string, wBlock int, setup, decode func()) *rowsKernel {
	return &rowsKernel{
		name: name, doc: doc,
		wBlock: wBlock, aBlock: q8_0Bytes, accs: 1, vex: true,
		prefetch: prefetchLines(wBlock),
		setup:    setup,
		decode:   decode,
		token: func(acc []Op) {
			Comment("pairs of elements 0..15 and 16..31, then lanes of four")
			VPMOVSXBW(X8, Y0)
			VEXTRACTI128(U8(1), Y8, X1)
			VPMOVSXBW(X1, Y1)
			VPMOVSXBW(Mem{Base: RBX, Disp: 2}, Y2)
			VPMADDWD(Y2, Y0, Y0)
			VPMOVSXBW(Mem{Base: RBX, Disp: 18}, Y2)
			VPMADDWD(Y2, Y1, Y1)
			VPHADDD(Y1, Y0, Y0)
			VPERMQ(U8(0xd8), Y0, Y0)
			VCVTDQ2PS(Y0, Y0)
			VPBROADCASTW(Mem{Base: RBX}, X4)
			VCVTPH2PS(X4, Y4)
			VMULPS(Y4, Y9, Y4)
			accFMA(Y4, Y0, acc[0], Y6)
		},
		finish: finishHsum8,
	}
}

// fp16ScaleY9 broadcasts the fp16 at SI+off as f32 into Y9.
func fp16ScaleY9(off int) {
	VPBROADCASTW(Mem{Base: RSI, Disp: off}, X9)
	VCVTPH2PS(X9, Y9)
}

// nibblesAVX2 leaves in y the 16 bytes at SI+off split into their low
// nibbles (lower 128 bits) and high nibbles (upper), given mask 0x0F in m.
func nibblesAVX2(off int, y, m VecPhysical) {
	VMOVDQU(Mem{Base: RSI, Disp: off}, y.AsX())
	VPSRLW(U8(4), y.AsX(), X1)
	VINSERTI128(U8(1), X1, y, y)
	VPAND(m, y, y)
}

func q8_0AVX2() *rowsKernel {
	return legacy32AVX2("dotQ8_0AVX2", []string{
		"dotQ8_0AVX2 is dotQ8_0AVX512 on AVX2: the lanes are exact sums of",
		"sign-extended 16-bit products (vpmaddwd, then adjacent pairs).",
	}, 34, func() {}, func() {
		VMOVDQU(Mem{Base: RSI, Disp: 2}, Y8)
		fp16ScaleY9(0)
	})
}

func q4_0AVX2() *rowsKernel {
	return legacy32AVX2("dotQ4_0AVX2", []string{"dotQ4_0AVX2 is dotQ4_0AVX512 on AVX2."}, 18, func() {
		VPBROADCASTB(table("nibbleMaskB", []byte{0x0f}), Y15)
		VPBROADCASTB(table("byte08", []byte{0x08}), Y14)
	}, func() {
		nibblesAVX2(2, Y8, Y15)
		VPSUBB(Y14, Y8, Y8)
		fp16ScaleY9(0)
	})
}

func q5_0AVX2() *rowsKernel {
	return legacy32AVX2("dotQ5_0AVX2", []string{
		"dotQ5_0AVX2 is dotQ5_0AVX512 on AVX2 (ggml's bytes_from_bits_32 for the fifth bits).",
	}, 22, func() {
		VPBROADCASTB(table("nibbleMaskB", []byte{0x0f}), Y15)
		VPBROADCASTB(table("bytesF0", []byte{0xf0}), Y14)
		var ctl []byte
		for i := 0; i < 32; i++ {
			ctl = append(ctl, byte(i/8))
		}
		VMOVDQU(table("bitsToBytesCtl", ctl), Y13)
		VPBROADCASTQ(table("bitsToBytesMask", []byte{0xfe, 0xfd, 0xfb, 0xf7, 0xef, 0xdf, 0xbf, 0x7f}), Y11)
		VPCMPEQB(Y10, Y10, Y10)
	}, func() {
		nibblesAVX2(6, Y8, Y15)
		Comment("fifth bits to bytes 0xFF/0x00; x = nibble | (bit ? 0 : 0xF0)")
		VPBROADCASTD(Mem{Base: RSI, Disp: 2}, Y1)
		VPSHUFB(Y13, Y1, Y1)
		VPOR(Y11, Y1, Y1)
		VPCMPEQB(Y10, Y1, Y1)
		VPANDN(Y14, Y1, Y1)
		VPOR(Y1, Y8, Y8)
		fp16ScaleY9(0)
	})
}

func q4_1AVX2() *rowsKernel {
	return &rowsKernel{
		name:   "dotQ4_1AVX2",
		doc:    []string{"dotQ4_1AVX2 is dotQ4_1AVX512 on AVX2 (maddubs of the nibbles, then pairs)."},
		wBlock: 20, aBlock: q8_1Bytes, accs: 2, vex: true,
		prefetch: prefetchLines(20),
		setup: func() {
			VPBROADCASTB(table("nibbleMaskB", []byte{0x0f}), Y15)
			VPBROADCASTW(table("w1", []byte{1, 0}), Y14)
		},
		decode: func() {
			nibblesAVX2(4, Y8, Y15)
			fp16ScaleY9(0)
			VPBROADCASTW(Mem{Base: RSI, Disp: 2}, X10)
			VCVTPH2PS(X10, X10)
		},
		token: func(acc []Op) {
			VPMADDUBSW(Mem{Base: RBX, Disp: 4}, Y8, Y0)
			VPMADDWD(Y14, Y0, Y0)
			VCVTDQ2PS(Y0, Y0)
			VPBROADCASTW(Mem{Base: RBX}, X4)
			VCVTPH2PS(X4, Y4)
			VMULPS(Y4, Y9, Y4)
			accFMA(Y4, Y0, acc[0], Y6)
			VPBROADCASTW(Mem{Base: RBX, Disp: 2}, X7)
			VCVTPH2PS(X7, X7)
			accumulateSS(VFMADD231SS, X7, X10, acc[1], X6)
		},
		finish: func(acc []Op) {
			finishHsum8(acc)
			loadAcc(acc[1], Y3, true)
			VADDSS(X3, X1, X1)
		},
	}
}
