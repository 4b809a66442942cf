package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Q4_K block (144 bytes): fp16 d, fp16 dmin, 12 bytes of 6-bit scales and
// mins, 128 bytes of nibbles (byte l of 32-byte chunk c: element 64c+l in
// the low nibble, 64c+32+l in the high one). Q8_K block (292 bytes): f32 d,
// 256 int8, 16 int16 bsums.
const (
	q4kBytes = 144
	q8kBytes = 292
	q8kQs    = 4
	q8kBsums = 260
)

// q4kScaleTables returns the VPSHUFB controls that turn the 16 bytes
// [sc0..3, m0..3, sc4..7, m4..7] (broadcast to every 128-bit lane) into the
// word scale vectors of the four 64-element chunks (lower 256 bits: the
// low-nibble sub-block 2c, upper: the high-nibble sub-block 2c+1), and the
// control that turns them into the eight min words.
func q4kScaleTables() (sc []byte, mins []byte) {
	pos := func(j int) byte { // byte of scale j in the 16-byte vector
		if j < 4 {
			return byte(j)
		}
		return byte(8 + j - 4)
	}
	for c := 0; c < 4; c++ {
		for lane := 0; lane < 4; lane++ {
			j := 2*c + lane/2
			for w := 0; w < 8; w++ {
				sc = append(sc, pos(j), 0x80)
			}
		}
	}
	for j := 0; j < 8; j++ {
		mins = append(mins, pos(j)+4, 0x80)
	}
	return sc, mins
}

// kmasks are the 64-bit masks of the scale unpacking.
func kmasks() (k3f, k03, k0f Mem) {
	return table("k3f", u64of(0x3f)), table("k03", u64of(0x03)), table("k0f", u64of(0x0f))
}

// q4kUnpackScales leaves in X8 the 16 bytes [sc0..3, m0..3, sc4..7, m4..7]
// of the Q4_K/Q5_K scales at SI+4 (ggml's utmp shuffle, on 64-bit
// registers). It clobbers AX, t1 and t2.
func q4kUnpackScales(dst VecPhysical, t1, t2 GPPhysical) {
	k3f, k03, k0f := kmasks()
	Comment("Scales and mins: U = bytes 0..7, V = bytes 8..11 of the 12.")
	MOVQ(Mem{Base: RSI, Disp: 4}, RAX)
	MOVL(Mem{Base: RSI, Disp: 12}, t1.As32())
	Comment("B = ((U >> 6) & 0x03..) << 4: the top bits of sc0..3 (low half) and m0..3 (high half)")
	MOVQ(RAX, t2)
	SHRQ(U8(6), t2)
	ANDQ(k03, t2)
	SHLQ(U8(4), t2)
	Comment("A = U & 0x3f..: sc0..3 (low half), m0..3 (high half)")
	ANDQ(k3f, RAX)
	VMOVQ(RAX, dst)
	Comment("Hi = (V | V<<28) & 0x0f.. | B: sc4..7 (low half), m4..7 (high half)")
	MOVQ(t1, RAX)
	SHLQ(U8(28), RAX)
	ORQ(RAX, t1)
	ANDQ(k0f, t1)
	ORQ(t2, t1)
	VPINSRQ(U8(1), t1, dst, dst)
}

// q4kAVX512 is the Q4_K x Q8_K kernel on 512-bit registers.
func q4kAVX512() *rowsKernel {
	var scCtl, minCtl Mem
	return &rowsKernel{
		name: "dotQ4KAVX512",
		doc: []string{
			"dotQ4KAVX512 is, for r < rows and t < nt (nt <= 8), with rows of nb blocks:",
			"",
			"\tout[t*ldo+r] = dotQ4K(nb*256, w[r*nb*144:], a[t*lda:])",
			"",
			"in ggml's AVX2 arithmetic (ggml_vec_dot_q4_K_q8_K): per block, eight int32",
			"lanes (lane l holds elements 4l..4l+3 of every 32-element sub-block times",
			"the sub-block scale) go to float and into acc[l] = fma(d*y.d, lane, acc[l]);",
			"the mins term into four lanes accm[k] += -(dmin*y.d) * (m[2k]*s[2k] + m[2k+1]*s[2k+1])",
			"with s[j] the sum of sub-block j's activations; the result is",
			"hsum8(acc) + hsum4(accm). A weight block is decoded once for all nt rows:",
			"a 512-bit register holds a 32-byte chunk's low nibbles (lower half) and",
			"high nibbles (upper half), which meet 64 contiguous q8 bytes.",
		},
		wBlock: q4kBytes, aBlock: q8kBytes, accBytes: 64,
		prefetch: prefetchLines(q4kBytes),
		setup: func() {
			sc, mins := q4kScaleTables()
			scCtl, minCtl = table("q4kScaleCtl", sc), table("q4kMinCtl", mins)
			Comment("Constants: nibble mask, per-half shift counts, scale shuffles.")
			VMOVDQU64(table("nibbleMask", splat(0x0f, 64)), Z31)
			VMOVDQU64(table("shiftHi4", words(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4)), Z30)
			VMOVDQU64(scCtl, Z26)
			VMOVDQU64(scCtl.Offset(64), Z27)
			VMOVDQU64(scCtl.Offset(128), Z28)
			VMOVDQU64(scCtl.Offset(192), Z29)
			VMOVDQU(minCtl, X9)
		},
		decode: func() {
			Comment("d and dmin to f32: Y12 = d (8 lanes), X13 = dmin (4 lanes).")
			VMOVD(Mem{Base: RSI}, X11)
			VCVTPH2PS(X11, X11)
			VBROADCASTSS(X11, Y12)
			VSHUFPS(U8(0x55), X11, X11, X13)
			q4kUnpackScales(X8, RBX, RDX)
			Comment("Scale words of the four chunks (Z4..Z7) and the mins (X10).")
			VSHUFI32X4(U8(0), Z8, Z8, Z8)
			VPSHUFB(Z26, Z8, Z4)
			VPSHUFB(Z27, Z8, Z5)
			VPSHUFB(Z28, Z8, Z6)
			VPSHUFB(Z29, Z8, Z7)
			VPSHUFB(X9, X8, X10)
			Comment("Nibbles of chunk c: low nibbles in the lower 256 bits, high in the upper (Z0..Z3).")
			for c, z := range []VecPhysical{Z0, Z1, Z2, Z3} {
				VBROADCASTI64X4(Mem{Base: RSI, Disp: 16 + 32*c}, z)
				VPSRLVW(Z30, z, z)
				VPANDD(Z31, z, z)
			}
		},
		token: func() {
			Comment("Integer lanes: maddubs(nibbles, q8) then words times scales into dwords.")
			VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs}, Z0, Z15)
			VPMADDWD(Z4, Z15, Z16)
			VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 64}, Z1, Z15)
			VPDPWSSD(Z5, Z15, Z16)
			VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 128}, Z2, Z15)
			VPDPWSSD(Z6, Z15, Z16)
			VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 192}, Z3, Z15)
			VPDPWSSD(Z7, Z15, Z16)
			Comment("Fold the two halves into ggml's eight lanes; acc = fma(d*y.d, float(lanes), acc).")
			VEXTRACTI64X4(U8(1), Z16, Y17)
			VPADDD(Y17, Y16, Y16)
			VCVTDQ2PS(Y16, Y16)
			VBROADCASTSS(Mem{Base: RBX}, Y14)
			VMULPS(Y12, Y14, Y17)
			accFMA(0, Y17, Y16, Y18)
			Comment("Mins: pairwise bsums, times the mins; accm -= (dmin*y.d) * float(...).")
			VMOVDQU(Mem{Base: RBX, Disp: q8kBsums}, X15)
			VPHADDW(Mem{Base: RBX, Disp: q8kBsums + 16}, X15, X15)
			VPMADDWD(X10, X15, X15)
			VCVTDQ2PS(X15, X15)
			VMULPS(X13, X14, X17)
			VMOVUPS(Mem{Base: R14, Disp: 32}, X18)
			VFNMADD231PS(X17, X15, X18)
			VMOVUPS(X18, Mem{Base: R14, Disp: 32})
		},
		finish: func() {
			Comment("hsum8(acc) + hsum4(accm)")
			finishHsum8()
			VMOVUPS(Mem{Base: R14, Disp: 32}, X3)
			hsum4(X3, X2)
			VADDSS(X3, X1, X1)
		},
	}
}
