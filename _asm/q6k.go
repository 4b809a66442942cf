package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Q6_K block (210 bytes): ql[128] low nibbles, qh[64] high 2-bit pairs,
// int8 scales[16] (one per 16 elements), fp16 d at 208.
const (
	q6kBytes  = 210
	q6kQh     = 128
	q6kScales = 192
	q6kD      = 208
)

// q6kAVX512 is the Q6_K x Q8_K kernel on 512-bit registers.
func q6kAVX512() *rowsKernel {
	return &rowsKernel{
		name: "dotQ6KAVX512",
		doc: []string{
			"dotQ6KAVX512 is, for r < rows and t < nt (nt <= 8), with rows of nb blocks:",
			"",
			"\tout[t*ldo+r] = dotQ6K(nb*256, w[r*nb*210:], a[t*lda:])",
			"",
			"in ggml's AVX2 arithmetic (ggml_vec_dot_q6_K_q8_K): the 6-bit levels q",
			"(0..63) times q8 in eight int32 lanes (lane l: elements 4l..4l+3 of every",
			"32-element group, times the int8 scale of its 16 elements), minus",
			"32*(bsum[2l]*sc[2l] + bsum[2l+1]*sc[2l+1]) in lane l, go to float into",
			"acc[l] = fma(d*y.d, lane, acc[l]); the result is hsum8(acc).",
			"",
			"A 512-bit register holds 64 levels: for the 128-element half j, one",
			"register has elements 0..63 (low nibbles of ql[64j:64j+64] with qh bits",
			"0-1 resp. 2-3) and one elements 64..127 (high nibbles with qh bits 4-5",
			"resp. 6-7), so the matching q8 bytes are one contiguous 64-byte load.",
		},
		wBlock: q6kBytes, aBlock: q8kBytes, accs: 1,
		prefetch: prefetchLines(q6kBytes), twoLevel: true,
		streamAccs: [][]Op{{Y20}, {Y21}, {Y22}, {Y23}},
		setup: func() {
			// VPERMW indices: 128-bit lane L of register k gets scale 4k+L.
			var idx []byte
			for k := 0; k < 4; k++ {
				for L := 0; L < 4; L++ {
					for w := 0; w < 8; w++ {
						idx = append(idx, byte(4*k+L), 0)
					}
				}
			}
			scIdx := table("q6kScaleIdx", idx)
			Comment("Constants: nibble mask, 0x30 mask, qh shift counts, scale permutations.")
			VMOVDQU64(table("nibbleMask", splat(0x0f, 64)), Z31)
			VMOVDQU64(table("mask30", splat(0x30, 64)), Z30)
			VMOVDQU64(table("q6kShl", words(4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)), Z29)
			VMOVDQU64(table("q6kShr", words(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)), Z28)
			VMOVDQU64(scIdx, Z24)
			VMOVDQU64(scIdx.Offset(64), Z25)
			VMOVDQU64(scIdx.Offset(128), Z26)
			VMOVDQU64(scIdx.Offset(192), Z27)
		},
		decode: func() {
			Comment("d to f32 in all lanes (Y12).")
			VPBROADCASTW(Mem{Base: RSI, Disp: q6kD}, X11)
			VCVTPH2PS(X11, Y12)
			Comment("Scales: 16 int8 to words (Y8, for the bsums term) and per-lane scale words Z4..Z7.")
			VPMOVSXBW(Mem{Base: RSI, Disp: q6kScales}, Y8)
			VPERMW(Z8, Z24, Z4)
			VPERMW(Z8, Z25, Z5)
			VPERMW(Z8, Z26, Z6)
			VPERMW(Z8, Z27, Z7)
			Comment("Levels of the two 128-element halves: Z0, Z1 (half 0), Z2, Z3 (half 1).")
			for j := 0; j < 2; j++ {
				lo, hi := []VecPhysical{Z0, Z2}[j], []VecPhysical{Z1, Z3}[j]
				VMOVDQU64(Mem{Base: RSI, Disp: 64 * j}, Z9)
				VBROADCASTI64X4(Mem{Base: RSI, Disp: q6kQh + 32*j}, Z10)
				Comment("lo = (ql & 0x0f) | ((qh << 4 or 2) & 0x30)")
				VPSLLVW(Z29, Z10, lo)
				VPANDD(Z30, lo, lo)
				VPTERNLOGD(U8(0xf8), Z31, Z9, lo) // lo |= Z9 & 0x0f
				Comment("hi = ((ql >> 4) & 0x0f) | ((qh >> 0 or 2) & 0x30)")
				VPSRLW(U8(4), Z9, Z9)
				VPSRLVW(Z28, Z10, hi)
				VPANDD(Z30, hi, hi)
				VPTERNLOGD(U8(0xf8), Z31, Z9, hi)
			}
		},
		token: func(acc []Op) {
			q6kLanes()
			Comment("acc = fma(d*y.d, float(lanes), acc)")
			VCVTDQ2PS(Y16, Y16)
			VBROADCASTSS(Mem{Base: RBX}, Y14)
			VMULPS(Y12, Y14, Y17)
			accFMA(Y17, Y16, acc[0], Y18)
		},
		finish: finishHsum8,
	}
}

// q6kLanes leaves in Y16 ggml's eight int32 lanes of a Q6_K block (decoded
// by q6kAVX512's decode) times the activation block at BX.
func q6kLanes() {
	Comment("Integer lanes: maddubs(levels, q8), times the scales into dwords.")
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs}, Z0, Z15)
	VPMADDWD(Z4, Z15, Z16)
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 64}, Z1, Z15)
	VPDPWSSD(Z5, Z15, Z16)
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 128}, Z2, Z15)
	VPDPWSSD(Z6, Z15, Z16)
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 192}, Z3, Z15)
	VPDPWSSD(Z7, Z15, Z16)
	Comment("Fold the halves; subtract 32*(bsums x scales) lane by lane.")
	VEXTRACTI64X4(U8(1), Z16, Y17)
	VPADDD(Y17, Y16, Y16)
	VPMADDWD(Mem{Base: RBX, Disp: q8kBsums}, Y8, Y17)
	VPSLLD(U8(5), Y17, Y17)
	VPSUBD(Y17, Y16, Y16)
}

// q6kBlockAVX512 is q6kAVX512 in the tile kernels' arithmetic
// (tileDotQ6KRef): the exact integer lanes summed to one int32 per block
// and token, then acc = fma(float(sumi), d*y.d, acc).
func q6kBlockAVX512() *rowsKernel {
	k := q6kAVX512()
	k.name = "dotQ6KBlockAVX512"
	k.doc = []string{
		"dotQ6KBlockAVX512 is, for r < rows and t < nt (nt <= 8), with rows of nb blocks:",
		"",
		"\tout[t*ldo+r] = tileDotQ6K(w[r*nb*210:], a[t*lda:], nb)",
		"",
		"in the AMX tile kernels' arithmetic: per block the exact integer dot",
		"sumi = sum_j scale_j * sum (level-32)*q8, then acc = fma(float(sumi),",
		"d*y.d, acc), rounded once per block (see dotQ4KBlockAVX512).",
	}
	k.token = func(acc []Op) {
		q6kLanes()
		Comment("sumi = the lanes' exact sum (X9); acc = fma(float(sumi), d*y.d, acc).")
		VEXTRACTI32X4(U8(1), Y16, X9)
		VPADDD(X16, X9, X9)
		VPHADDD(X9, X9, X9)
		VPHADDD(X9, X9, X9)
		VCVTDQ2PS(X9, X9)
		VMULSS(Mem{Base: RBX}, X12, X10)
		accumulateSS(VFMADD231SS, X10, X9, acc[0], Y18)
	}
	k.finish = finishLow
	return k
}
