package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// rowsKernel describes one rows kernel: the loops are shared, the format
// supplies the per-block and per-token code.
//
// Register contract of the skeleton (every kernel body keeps to it):
//
//	DI  out + r*4 (current row)        R8  ldo*4
//	SI  current weight block           R9  rows left
//	R10 activation block of token 0    R11 lda
//	R12 nt                             R13 nb
//	CX  blocks left                    DX  tokens left
//	BX  activation block of token t    R14 accumulator of token t
//	AX  free in decode and token code
//
// The accumulators live in the local frame, accBytes per token (nt <= 8).
type rowsKernel struct {
	name     string
	doc      []string
	wBlock   int   // weight bytes per block
	aBlock   int   // activation bytes per block
	accBytes int   // accumulator bytes per token (32 or 64)
	prefetch []int // offsets from SI prefetched per block
	setup    func()
	decode   func() // weight block at SI into registers
	token    func() // activation block at BX, accumulator at R14
	finish   func() // accumulator at R14 -> low float of X1 (X0-X2 free)
	vex      bool   // AVX2 kernel: Y0-Y15 only, no ZMM zeroing needed
}

// prefetchAhead is how far ahead of the block being read the weight stream
// is prefetched.
const prefetchAhead = 6144

// prefetchLines returns the offsets that prefetch one block's worth of
// cache lines ahead.
func prefetchLines(blockBytes int) []int {
	var p []int
	for off := 0; off < blockBytes; off += 64 {
		p = append(p, prefetchAhead+off)
	}
	return p
}

func (k *rowsKernel) gen() {
	fn := k.name
	Implement(fn)
	Attributes(NOSPLIT)
	Comment(k.doc...)
	acc := AllocLocal(8 * k.accBytes)

	Load(Param("out"), RDI)
	Load(Param("ldo"), R8)
	SHLQ(U8(2), R8)
	Load(Param("w"), RSI)
	Load(Param("rows"), R9)
	Load(Param("lda"), R11)
	Load(Param("nt"), R12)
	Load(Param("nb"), R13)
	k.setup()

	TESTQ(R9, R9)
	JLE(LabelRef(lbl(fn, "done")))

	Label(lbl(fn, "row"))
	Comment("Zero the nt accumulators.")
	VXORPS(Y0, Y0, Y0)
	LEAQ(acc, R14)
	MOVQ(R12, RDX)
	Label(lbl(fn, "zero"))
	for off := 0; off < k.accBytes; off += 32 {
		VMOVUPS(Y0, Mem{Base: R14, Disp: off})
	}
	ADDQ(U8(k.accBytes), R14)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "zero")))

	Load(Param("a"), R10)
	MOVQ(R13, RCX)

	Label(lbl(fn, "block"))
	Commentf("Prefetch the weight stream %d bytes ahead.", prefetchAhead)
	for _, off := range k.prefetch {
		PREFETCHT0(Mem{Base: RSI, Disp: off})
	}
	k.decode()

	MOVQ(R10, RBX)
	LEAQ(acc, R14)
	MOVQ(R12, RDX)
	Label(lbl(fn, "tok"))
	k.token()
	ADDQ(R11, RBX)
	ADDQ(U8(k.accBytes), R14)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "tok")))

	ADDQ(U32(k.wBlock), RSI)
	ADDQ(U32(k.aBlock), R10)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "block")))

	Comment("Reduce each token's accumulator into out[t*ldo+r].")
	LEAQ(acc, R14)
	MOVQ(RDI, RAX)
	MOVQ(R12, RDX)
	Label(lbl(fn, "fin"))
	k.finish()
	VMOVSS(X1, Mem{Base: RAX})
	ADDQ(R8, RAX)
	ADDQ(U8(k.accBytes), R14)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "fin")))

	ADDQ(U8(4), RDI)
	DECQ(R9)
	JNZ(LabelRef(lbl(fn, "row")))

	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// accFMA does acc[R14+off] = fma(scale, lanes, acc) on 8 (Y) or 4 (X)
// lanes, ggml's _mm256_fmadd_ps(d, q, acc); tmp is clobbered.
func accFMA(off int, scale, lanes, tmp VecPhysical) {
	m := Mem{Base: R14, Disp: off}
	VMOVUPS(m, tmp)
	VFMADD231PS(scale, lanes, tmp)
	VMOVUPS(tmp, m)
}

// finishHsum8 leaves hsum8 of the 8 floats at R14 in X1 (X0 clobbered).
func finishHsum8() {
	VMOVUPS(Mem{Base: R14}, Y0)
	hsum8vex(Y0, X1, X2)
}

// hsum8vex leaves in dst's low float ggml's hsum_float_8 of v: (hi+lo)
// pairs, then (r0+r2)+(r1+r3). Registers below 16 (VEX).
func hsum8vex(v, dst, tmp VecPhysical) {
	VEXTRACTF128(U8(1), v, dst)
	VADDPS(v.AsX(), dst, dst)
	hsum4(dst, tmp)
}

// hsum4 reduces the four floats of x in place: (x0+x2)+(x1+x3) in x0.
func hsum4(x, tmp VecPhysical) {
	VMOVHLPS(x, x, tmp)
	VADDPS(tmp, x, x)
	VMOVSHDUP(x, tmp)
	VADDSS(tmp, x, x)
}
