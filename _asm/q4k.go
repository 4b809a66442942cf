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

// nibbleMatrices is the VGF2P8AFFINEQB operand that takes the low nibble
// of each byte in the lower 256 bits and the high nibble in the upper 256.
func nibbleMatrices() Mem {
	var b []byte
	for q := 0; q < 8; q++ {
		v := uint64(0x0102040800000000) // out bit i = in bit i, i < 4
		if q >= 4 {
			v = 0x1020408000000000 // out bit i = in bit i+4, i < 4
		}
		for k := 0; k < 8; k++ {
			b = append(b, byte(v>>(8*k)))
		}
	}
	return table("nibbleMatrices", b)
}

// qwordMasks sets K1 = 0x55 and K2 = 0xAA (even and odd qwords).
func qwordMasks() {
	MOVL(U32(0x55), EAX)
	KMOVB(EAX, K1)
	MOVL(U32(0xAA), EAX)
	KMOVB(EAX, K2)
}

// kmasks are the 64-bit masks of the scale unpacking.
func kmasks() (k3f, k03, k0f Mem) {
	return table("k3f", u64of(0x3f)), table("k03", u64of(0x03)), table("k0f", u64of(0x0f))
}

// q4kUnpackScales leaves in every 128-bit lane of dst the 16 bytes
// [sc0..3, m0..3, sc4..7, m4..7] of the Q4_K/Q5_K scales at SI+4 (ggml's
// utmp shuffle, on 64-bit registers; B = ((U >> 6) & 0x03..) << 4 are the
// top bits of sc4..7 and m4..7). K1 and K2 must hold 0x55 and 0xAA. It
// clobbers AX, t1 and t2.
func q4kUnpackScales(dst VecPhysical, t1, t2 GPPhysical) {
	k3f, k03, k0f := kmasks()
	Comment("Scales and mins: U = bytes 0..7, V = bytes 8..11 of the 12.")
	MOVQ(Mem{Base: RSI, Disp: 4}, RAX)
	MOVL(Mem{Base: RSI, Disp: 12}, t1.As32())
	Comment("A = U & 0x3f..: sc0..3 (low half), m0..3 (high half)")
	ANDQ(k3f, RAX)
	Comment("Hi = (V | V<<28) & 0x0f.. | B: sc4..7 (low half), m4..7 (high half)")
	MOVQ(t1, t2)
	SHLQ(U8(28), t2)
	ORQ(t2, t1)
	ANDQ(k0f, t1)
	MOVQ(Mem{Base: RSI, Disp: 4}, t2)
	SHRQ(U8(6), t2)
	ANDQ(k03, t2)
	SHLQ(U8(4), t2)
	ORQ(t2, t1)
	Comment("Every 128-bit lane of dst = [A, Hi] (K1 selects even qwords, K2 odd).")
	VPBROADCASTQ(RAX, K1, dst)
	VPBROADCASTQ(t1, K2, dst)
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
		wBlock: q4kBytes, aBlock: q8kBytes, accs: 2,
		prefetch: prefetchLines(q4kBytes), twoLevel: true,
		streamAccs: [][]Op{{Y20, Y21}, {Y22, Y23}, {Y24, Y25}, {Y19, Y30}},
		setup: func() {
			sc, mins := q4kScaleTables()
			scCtl, minCtl = table("q4kScaleCtl", sc), table("q4kMinCtl", mins)
			Comment("Constants: nibble mask, per-half shift counts, scale shuffles.")
			VMOVDQU64(nibbleMatrices(), Z31)
			qwordMasks()
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
			q4kUnpackScales(Z8, RDX, R14)
			Comment("Scale words of the four chunks (Z4..Z7) and the mins (X10).")
			VPSHUFB(Z26, Z8, Z4)
			VPSHUFB(Z27, Z8, Z5)
			VPSHUFB(Z28, Z8, Z6)
			VPSHUFB(Z29, Z8, Z7)
			VPSHUFB(X9, X8, X10)
			Comment("Nibbles of chunk c: low nibbles in the lower 256 bits, high in the upper (Z0..Z3).")
			for c, z := range []VecPhysical{Z0, Z1, Z2, Z3} {
				VBROADCASTI64X4(Mem{Base: RSI, Disp: 16 + 32*c}, z)
				VGF2P8AFFINEQB(U8(0), Z31, z, z)
			}
		},
		shared: func() {
			Comment("From the activation block: Y14 = y.d, X18 = the pairwise bsums (the sub-block sums).")
			VBROADCASTSS(Mem{Base: RBX}, Y14)
			VMOVDQU(Mem{Base: RBX, Disp: q8kBsums}, X15)
			VPHADDW(Mem{Base: RBX, Disp: q8kBsums + 16}, X15, X15)
			VMOVDQA64(X15, X18)
		},
		token: func(acc []Op) {
			q4kLanes()
			Comment("acc = fma(d*y.d, float(lanes), acc).")
			VCVTDQ2PS(Y16, Y16)
			VMULPS(Y12, Y14, Y17)
			Comment("(Y24 is the scratch of accumulators in memory: the several-token loop, where no stream uses it.)")
			accFMA(Y17, Y16, acc[0], Y24)
			Comment("Mins: pairwise bsums times the mins; accm -= (dmin*y.d) * float(...).")
			VPMADDWD(X10, X18, X15)
			VCVTDQ2PS(X15, X15)
			VMULPS(X13, X14, X17)
			accumulate(VFNMADD231PS, X17, X15, acc[1], Y24, true)
		},
		finish: func(acc []Op) {
			Comment("hsum8(acc) + hsum4(accm)")
			finishHsum8(acc)
			loadAcc(acc[1], Y3, true)
			hsum4(X3, X2)
			VADDSS(X3, X1, X1)
		},
	}
}

// q4kLanes leaves in Y16 ggml's eight int32 lanes of a Q4_K block (decoded
// into Z0-Z8 by q4kAVX512's decode) times the activation block at BX.
func q4kLanes() {
	Comment("Integer lanes: maddubs(nibbles, q8) then words times scales into dwords.")
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs}, Z0, Z15)
	VPMADDWD(Z4, Z15, Z16)
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 64}, Z1, Z15)
	VPDPWSSD(Z5, Z15, Z16)
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 128}, Z2, Z15)
	VPDPWSSD(Z6, Z15, Z16)
	VPMADDUBSW(Mem{Base: RBX, Disp: q8kQs + 192}, Z3, Z15)
	VPDPWSSD(Z7, Z15, Z16)
	Comment("Fold the two halves into ggml's eight lanes.")
	VEXTRACTI64X4(U8(1), Z16, Y17)
	VPADDD(Y17, Y16, Y16)
}

// q4kBlockAVX512 is q4kAVX512 in the tile kernels' arithmetic
// (tileDotQ4KRef): the same exact integer lanes, summed to one exact
// int32 per block and token, then rounded once per block.
func q4kBlockAVX512() *rowsKernel {
	k := q4kAVX512()
	k.name = "dotQ4KBlockAVX512"
	k.doc = []string{
		"dotQ4KBlockAVX512 is, for r < rows and t < nt (nt <= 8), with rows of nb blocks:",
		"",
		"\tout[t*ldo+r] = tileDotQ4K(w[r*nb*144:], a[t*lda:], nb)",
		"",
		"in the AMX tile kernels' arithmetic: per block the exact integer dot of the",
		"levels times the sub-block scales (sumi) and of the mins times the sub-block",
		"sums (mins), then acc = fma(float(sumi), d*y.d, acc) and",
		"acc = fma(-float(mins), dmin*y.d, acc), each rounded once. The batch-",
		"invariant mode runs it where the tiles take the larger products, so that a",
		"row's result does not depend on how many tokens share its product.",
	}
	k.accs = 1
	k.streamAccs = [][]Op{{Y20}, {Y21}, {Y22}, {Y23}}
	k.token = func(acc []Op) {
		q4kLanes()
		Comment("sumi = the lanes' exact sum; acc = fma(float(sumi), d*y.d, acc).")
		hsumD8(Y16, Y17)
		VCVTDQ2PS(X16, X16)
		VMULSS(X12, X14, X17)
		accumulateSS(VFMADD231SS, X17, X16, acc[0], Y24)
		Comment("mins = sum of the mins times the sub-block sums; acc = fma(-float(mins), dmin*y.d, acc).")
		VPMADDWD(X10, X18, X15)
		hsumD4(X15, X17)
		VCVTDQ2PS(X15, X15)
		VMULSS(X13, X14, X17)
		accumulateSS(VFNMADD231SS, X17, X15, acc[0], Y24)
	}
	k.finish = finishLow
	return k
}
