package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genQuantQ8K emits quantizeQ8KAVX512: ggml's quantize_row_q8_K (the
// reference rule, which x86 runs) on nb blocks of 256 floats.
func genQuantQ8K() {
	const fn = "quantizeQ8KAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Comment(
		"quantizeQ8KAVX512 is quantize_row_q8_K for nb blocks: per block, max is the",
		"first element of largest magnitude (NaNs never win), iscale = -127/max,",
		"q = min(127, round-half-even(iscale*x)) stored as its low byte (so NaN",
		"and Inf products give 0, as ggml's nearest_int does), d = 1/iscale, and",
		"bsums[j] = the sum of q[16j:16j+16]. A block with max 0 is all zeros.",
	)
	Load(Param("dst"), RDI)
	Load(Param("src"), RSI)
	Load(Param("nb"), RCX)
	VPBROADCASTD(table("absMask", []byte{0xff, 0xff, 0xff, 0x7f}), Z31)
	VPBROADCASTD(table("i32_127", []byte{127, 0, 0, 0}), Z30)
	VPBROADCASTB(table("bytes80", splat(0x80, 32)), Z29)
	VPXORD(Z28, Z28, Z28)
	TESTQ(RCX, RCX)
	JZ(LabelRef(lbl(fn, "done")))

	Label(lbl(fn, "block"))
	Comment("amax = max |x| over the block, NaNs ignored: acc = new > acc ? new : acc.")
	VXORPS(Z0, Z0, Z0)
	for k := 0; k < 16; k++ {
		VANDPS(Mem{Base: RSI, Disp: 64 * k}, Z31, Z1)
		VMAXPS(Z0, Z1, Z0)
	}
	VEXTRACTF64X4(U8(1), Z0, Y1)
	VMAXPS(Y1, Y0, Y0)
	VEXTRACTF128(U8(1), Y0, X1)
	VMAXPS(X1, X0, X0)
	VMOVHLPS(X0, X0, X1)
	VMAXPS(X1, X0, X0)
	VMOVSHDUP(X0, X1)
	VMAXSS(X1, X0, X0)
	VXORPS(X1, X1, X1)
	VUCOMISS(X1, X0)
	JNE(LabelRef(lbl(fn, "nonzero")))
	Comment("All zero (or NaN): d = 0, codes 0, bsums 0.")
	for off := 0; off < 256; off += 64 {
		VMOVDQU64(Z28, Mem{Base: RDI, Disp: 4 + off})
	}
	VMOVDQU64(Y28, Mem{Base: RDI, Disp: 260})
	MOVL(U32(0), Mem{Base: RDI})
	JMP(LabelRef(lbl(fn, "next")))

	Label(lbl(fn, "nonzero"))
	Comment("The first element whose magnitude equals amax gives the signed max.")
	VBROADCASTSS(X0, Z0)
	XORQ(RAX, RAX)
	Label(lbl(fn, "find"))
	VANDPS(Mem{Base: RSI, Index: RAX, Scale: 4}, Z31, Z1)
	VCMPPS(U8(0), Z0, Z1, K1) // EQ_OQ
	KMOVW(K1, EDX)
	TESTL(EDX, EDX)
	JNZ(LabelRef(lbl(fn, "found")))
	ADDQ(U8(16), RAX)
	JMP(LabelRef(lbl(fn, "find")))
	Label(lbl(fn, "found"))
	TZCNTL(EDX, EDX)
	ADDQ(RDX, RAX)
	VMOVSS(Mem{Base: RSI, Index: RAX, Scale: 4}, X1)
	Comment("iscale = -127/max, d = 1/iscale")
	VMOVSS(table("f32m127", []byte{0x00, 0x00, 0xfe, 0xc2}), X2)
	VDIVSS(X1, X2, X2)
	VMOVSS(table("f32one", []byte{0x00, 0x00, 0x80, 0x3f}), X3)
	VDIVSS(X2, X3, X3)
	VMOVSS(X3, Mem{Base: RDI})
	VBROADCASTSS(X2, Z2)
	Comment("q = min(127, round(iscale*x)), low byte")
	for k := 0; k < 16; k++ {
		VMULPS(Mem{Base: RSI, Disp: 64 * k}, Z2, Z3)
		VCVTPS2DQ(Z3, Z3)
		VPMINSD(Z30, Z3, Z3)
		VPMOVDB(Z3, Mem{Base: RDI, Disp: 4 + 16*k})
	}
	Comment("bsums: VPSADBW sums (q+128) over each 8 bytes; pairs of those are the")
	Comment("16-byte groups (plus 2048).")
	for c := 0; c < 4; c++ {
		z := []VecPhysical{Z4, Z5, Z6, Z7}[c]
		VPXORD(Mem{Base: RDI, Disp: 4 + 64*c}, Z29, z)
		VPSADBW(Z28, z, z)
		VPMOVQW(z, z.AsX())
	}
	VINSERTI128(U8(1), X5, Y4, Y4)
	VINSERTI128(U8(1), X7, Y6, Y6)
	VPBROADCASTW(table("w1", []byte{1, 0}), Y9)
	VPMADDWD(Y9, Y4, Y4) // [G0..G3 | G4..G7] + 2048
	VPMADDWD(Y9, Y6, Y6) // [G8..G11 | G12..G15] + 2048
	VPACKSSDW(Y6, Y4, Y4)
	VPERMQ(U8(0xd8), Y4, Y4)
	VPBROADCASTW(table("w2048", []byte{0x00, 0x08}), Y9)
	VPSUBW(Y9, Y4, Y4)
	VMOVDQU(Y4, Mem{Base: RDI, Disp: 260})

	Label(lbl(fn, "next"))
	ADDQ(U32(1024), RSI)
	ADDQ(U32(292), RDI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "block")))
	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// genQuantQ8_0 emits quantizeQ8_0AVX512: ggml-cpu's x86 quantize_row_q8_0.
func genQuantQ8_0() {
	const fn = "quantizeQ8_0AVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Comment(
		"quantizeQ8_0AVX512 is ggml-cpu's AVX quantize_row_q8_0 for nb blocks of 32:",
		"amax by ggml's max tree (four 8-lane vectors max'ed in order, then",
		"8 -> 4 -> 2 -> 1, MAXPS keeping its second operand on NaN), d = fp16(amax/127),",
		"id = 127/amax (0 when amax is 0), q = saturate8(round-half-even(x*id)).",
	)
	Load(Param("dst"), RDI)
	Load(Param("src"), RSI)
	Load(Param("nb"), RCX)
	VPBROADCASTD(table("absMask", []byte{0xff, 0xff, 0xff, 0x7f}), Y15)
	VMOVSS(table("f32p127", []byte{0x00, 0x00, 0xfe, 0x42}), X14)
	TESTQ(RCX, RCX)
	JZ(LabelRef(lbl(fn, "done")))
	Label(lbl(fn, "block"))
	Comment("m = max(max(max(|a0|, |a1|), |a2|), |a3|) lane-wise")
	VANDPS(Mem{Base: RSI}, Y15, Y0)
	for k := 1; k < 4; k++ {
		VANDPS(Mem{Base: RSI, Disp: 32 * k}, Y15, Y1)
		VMAXPS(Y1, Y0, Y0)
	}
	VEXTRACTF128(U8(1), Y0, X1)
	VMAXPS(X0, X1, X1) // max(hi, lo)
	VMOVHLPS(X1, X1, X2)
	VMAXPS(X2, X1, X1)
	VMOVSHDUP(X1, X2)
	VMAXSS(X2, X1, X1)
	Comment("d = fp16(amax/127); id = amax != 0 ? 127/amax : 0")
	VDIVSS(X14, X1, X2)
	VCVTPS2PH(U8(0), X2, X2)
	VPEXTRW(U8(0), X2, Mem{Base: RDI})
	VXORPS(X3, X3, X3)
	VUCOMISS(X3, X1)
	JP(LabelRef(lbl(fn, "div"))) // NaN != 0: id = 127/NaN
	JE(LabelRef(lbl(fn, "zero")))
	Label(lbl(fn, "div"))
	VDIVSS(X1, X14, X3)
	Label(lbl(fn, "zero"))
	VBROADCASTSS(X3, Z3)
	Comment("q = saturate8(round(x*id))")
	VMULPS(Mem{Base: RSI}, Z3, Z4)
	VMULPS(Mem{Base: RSI, Disp: 64}, Z3, Z5)
	VCVTPS2DQ(Z4, Z4)
	VCVTPS2DQ(Z5, Z5)
	VPMOVSDB(Z4, Mem{Base: RDI, Disp: 2})
	VPMOVSDB(Z5, Mem{Base: RDI, Disp: 18})
	ADDQ(U32(128), RSI)
	ADDQ(U32(34), RDI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "block")))
	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}
