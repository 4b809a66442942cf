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
//	BX  activation block of token t    R14 accumulators of token t
//	AX  free in decode and token code  Z20-Z23: single-token accumulators
//	                                   (Y12, Y13 in AVX2 kernels)
//
// With one token (decode) the accumulators live in Z20-Z23; with several,
// in the local frame, 32 bytes each per token (nt <= 8).
type rowsKernel struct {
	name     string
	doc      []string
	wBlock   int   // weight bytes per block
	aBlock   int   // activation bytes per block
	accs     int   // accumulator vectors (8 floats) per token
	prefetch []int // offsets from SI prefetched per block
	setup    func()
	decode   func()         // weight block at SI into registers
	token    func(acc []Op) // activation block at BX into the accumulators
	// shared, when set, computes what token needs from the activation
	// block alone (after decode, before token); the interleaved one-token
	// streams share one activation block and run it once per block.
	shared func()
	finish func(acc []Op) // accumulators -> low float of X1 (X0-X3 free)
	// twoLevel prefetches the weight stream into L2 (PREFETCHT1)
	// prefetchAhead bytes ahead and from there into L1 (PREFETCHT0)
	// prefetchNear bytes ahead, instead of into L1 prefetchAhead ahead.
	twoLevel bool
	// streamAccs, when set, are the accumulators of each of four
	// interleaved one-token streams (genStreams); AVX-512 kernels with
	// at most two accumulators and no streamAccs use two streams.
	streamAccs [][]Op
	// vex marks an AVX2 kernel: only Y0-Y15, no EVEX; its one-token
	// accumulators are Y12 and Y13 instead of Z20-Z23.
	vex bool
}

// prefetchAhead is how far ahead of the block being read the weight stream
// is prefetched.
const prefetchAhead = 6144

// prefetchNear is the distance of the L1 prefetch of two-level kernels.
// Measured on the 2-core AVX-512 machine (1 GiB Q4_K and Q6_K matrices):
// PREFETCHT1 6 KiB ahead instead of PREFETCHT0 raised Q6_K mat-vec
// throughput by about 20% and Q4_K by about 6%; the extra PREFETCHT0 1 KiB
// ahead added about 4% more to both (PREFETCHNTA lost 25%; 4 KiB or 10 KiB
// instead of 6 KiB did no better).
const prefetchNear = 1024

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
	accBytes := 32 * k.accs
	frame := AllocLocal(8 * accBytes)

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
	CMPQ(R12, U8(1))
	JNE(LabelRef(lbl(fn, "row")))

	Comment("One token: accumulators in registers.")
	regs := []Op{Y20, Y21, Y22, Y23}[:k.accs]
	if k.vex {
		regs = []Op{Y12, Y13}[:k.accs]
	}
	switch {
	case k.streamAccs != nil:
		k.genStreams(k.streamAccs)
	case !k.vex && k.accs <= 2:
		k.genStreams([][]Op{regs, []Op{Y22, Y23}[:k.accs]})
	}
	Label(lbl(fn, "row1"))
	for _, r := range regs {
		VXORPS(r, r, r)
	}
	Load(Param("a"), RBX)
	MOVQ(R13, RCX)
	Label(lbl(fn, "block1"))
	k.prefetchBlock()
	k.decode()
	k.emitShared()
	k.token(regs)
	ADDQ(U32(k.wBlock), RSI)
	ADDQ(U32(k.aBlock), RBX)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "block1")))
	k.finish(regs)
	VMOVSS(X1, Mem{Base: RDI})
	ADDQ(U8(4), RDI)
	DECQ(R9)
	JNZ(LabelRef(lbl(fn, "row1")))
	JMP(LabelRef(lbl(fn, "done")))

	Comment("Several tokens: accumulators in the frame.")
	var mems []Op
	for i := 0; i < k.accs; i++ {
		mems = append(mems, Mem{Base: R14, Disp: 32 * i})
	}
	Label(lbl(fn, "row"))
	VXORPS(Y0, Y0, Y0)
	LEAQ(frame, R14)
	MOVQ(R12, RDX)
	Label(lbl(fn, "zero"))
	for _, m := range mems {
		VMOVUPS(Y0, m)
	}
	ADDQ(U8(accBytes), R14)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "zero")))

	Load(Param("a"), R10)
	MOVQ(R13, RCX)

	Label(lbl(fn, "block"))
	k.prefetchBlock()
	k.decode()

	MOVQ(R10, RBX)
	LEAQ(frame, R14)
	MOVQ(R12, RDX)
	Label(lbl(fn, "tok"))
	k.emitShared()
	k.token(mems)
	ADDQ(R11, RBX)
	ADDQ(U8(accBytes), R14)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "tok")))

	ADDQ(U32(k.wBlock), RSI)
	ADDQ(U32(k.aBlock), R10)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "block")))

	Comment("Reduce each token's accumulators into out[t*ldo+r].")
	LEAQ(frame, R14)
	MOVQ(RDI, RAX)
	MOVQ(R12, RDX)
	Label(lbl(fn, "fin"))
	k.finish(mems)
	VMOVSS(X1, Mem{Base: RAX})
	ADDQ(R8, RAX)
	ADDQ(U8(accBytes), R14)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "fin")))

	ADDQ(U8(4), RDI)
	DECQ(R9)
	JNZ(LabelRef(lbl(fn, "row")))

	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// genStreams emits the one-token loop over rows in len(accs) (2 or 4)
// interleaved streams: stream s computes rows s*q+i of the q = rows/n
// rows per stream, block by block in turn, which keeps more memory reads
// in flight than one stream (measured on the 2-core AVX-512 machine: 26-28
// GB/s with two or four interleaved read streams per thread against 23-25
// GB/s with one). Stream s > 0 keeps its block pointer in R15, R10 or R11
// (unused by the one-token loop) and swaps it into SI around its block;
// accs[s] are its accumulators. On exit SI, DI and R9 are those of the
// rows left for the single-row loop (rows%n).
func (k *rowsKernel) genStreams(accs [][]Op) {
	fn := k.name
	n := len(accs)
	ptrs := []GPPhysical{RSI, R15, R10, R11}[:n]
	shift := map[int]uint8{2: 1, 4: 2}[n]
	Commentf("Rows in %d streams: R9 = rows per stream; the rows%%%d left go to the loop below.", n, n)
	MOVQ(R9, RAX)
	SHRQ(U8(shift), RAX)
	JZ(LabelRef(lbl(fn, "row1")))
	Comment("Stream s's weights start s*q rows on: RDX = q*nb*wBlock.")
	MOVQ(R13, RDX)
	IMUL3Q(U32(k.wBlock), RDX, RDX)
	IMULQ(RAX, RDX)
	for s := 1; s < n; s++ {
		LEAQ(Mem{Base: ptrs[s-1], Index: RDX, Scale: 1}, ptrs[s])
	}
	Comment("Keep rows in its argument slot (reloaded below).")
	Store(R9, Param("rows"))
	MOVQ(RAX, R9)
	Label(lbl(fn, "streams"))
	for _, a := range accs {
		for _, r := range a {
			VXORPS(r, r, r)
		}
	}
	Load(Param("a"), RBX)
	MOVQ(R13, RCX)
	Label(lbl(fn, "sblock"))
	for s := 0; s < n; s++ {
		if s > 0 {
			XCHGQ(RSI, ptrs[s])
		}
		k.prefetchBlock()
		k.decode()
		if s == 0 {
			k.emitShared()
		}
		k.token(accs[s])
		if s > 0 {
			XCHGQ(RSI, ptrs[s])
		}
	}
	for _, p := range ptrs {
		ADDQ(U32(k.wBlock), p)
	}
	ADDQ(U32(k.aBlock), RBX)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "sblock")))
	Comment("Stream s's result goes to DI + s*q*4.")
	Load(Param("rows"), RDX)
	SHRQ(U8(shift), RDX)
	SHLQ(U8(2), RDX)
	MOVQ(RDI, RAX)
	for s := 0; s < n; s++ {
		k.finish(accs[s])
		VMOVSS(X1, Mem{Base: RAX})
		ADDQ(RDX, RAX)
	}
	ADDQ(U8(4), RDI)
	DECQ(R9)
	JNZ(LabelRef(lbl(fn, "streams")))
	Comment("Past all streams: SI = the last stream's position, DI past its rows, R9 = rows%n.")
	MOVQ(ptrs[n-1], RSI)
	Load(Param("rows"), R9)
	MOVQ(R9, RAX)
	SHRQ(U8(shift), RAX)
	IMUL3Q(U32(n-1), RAX, RAX)
	LEAQ(Mem{Base: RDI, Index: RAX, Scale: 4}, RDI)
	ANDQ(U8(n-1), R9)
	JZ(LabelRef(lbl(fn, "done")))
}

// emitShared emits the kernel's per-activation-block code, if any.
func (k *rowsKernel) emitShared() {
	if k.shared != nil {
		k.shared()
	}
}

func (k *rowsKernel) prefetchBlock() {
	if k.twoLevel {
		Commentf("Prefetch the weight stream into L2 %d bytes ahead, into L1 %d bytes ahead.", prefetchAhead, prefetchNear)
		for _, off := range k.prefetch {
			PREFETCHT1(Mem{Base: RSI, Disp: off})
		}
		for _, off := range k.prefetch {
			PREFETCHT0(Mem{Base: RSI, Disp: off - prefetchAhead + prefetchNear})
		}
		return
	}
	Commentf("Prefetch the weight stream %d bytes ahead.", prefetchAhead)
	for _, off := range k.prefetch {
		PREFETCHT0(Mem{Base: RSI, Disp: off})
	}
}

// isReg reports whether an accumulator lives in a register.
func isReg(acc Op) bool {
	_, ok := acc.(Register)
	return ok
}

// accumulate applies op(a, b, acc) (an FMA-family instruction with avo's
// operand order: multiplicands first, accumulator last) to an accumulator
// in a register or in memory; tmp is used for the memory case. x selects
// the 128-bit (4-lane) form.
func accumulate(op func(...Op), a, b, acc Op, tmp VecPhysical, x bool) {
	if isReg(acc) {
		r := Op(acc)
		if x {
			r = acc.(VecPhysical).AsX()
		}
		op(a, b, r)
		return
	}
	t := Op(tmp.AsY())
	if x {
		t = tmp.AsX()
	}
	VMOVUPS(acc, t)
	op(a, b, t)
	VMOVUPS(t, acc)
}

// accFMA does acc = fma(scale, lanes, acc) on 8 lanes, ggml's
// _mm256_fmadd_ps(d, q, acc); tmp is clobbered.
func accFMA(scale, lanes, acc Op, tmp VecPhysical) {
	accumulate(VFMADD231PS, scale, lanes, acc, tmp, false)
}

// loadAcc loads an accumulator (8 lanes, or 4 with x) into dst.
func loadAcc(acc Op, dst VecPhysical, x bool) {
	if x {
		dst = dst.AsX().(VecPhysical)
	}
	if isReg(acc) {
		r := Op(acc)
		if x {
			r = acc.(VecPhysical).AsX()
		}
		VMOVAPS(r, dst)
		return
	}
	VMOVUPS(acc, dst)
}

// finishHsum8 leaves hsum8 of the first accumulator in X1.
func finishHsum8(acc []Op) {
	loadAcc(acc[0], Y0, false)
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

// accumulateSS applies a scalar FMA-family op to the low float of an
// accumulator in a register or in memory; tmp is used for memory.
func accumulateSS(op func(...Op), a, b, acc Op, tmp VecPhysical) {
	if isReg(acc) {
		op(a, b, acc.(VecPhysical).AsX())
		return
	}
	VMOVSS(acc, tmp.AsX())
	op(a, b, tmp.AsX())
	VMOVSS(tmp.AsX(), acc)
}

// hsumD8 leaves in y's low dword the exact sum of its eight int32 lanes;
// tmp is clobbered. EVEX forms, so any register.
func hsumD8(y, tmp VecPhysical) {
	VEXTRACTI32X4(U8(1), y, tmp.AsX())
	VPADDD(tmp.AsX(), y.AsX(), y.AsX())
	hsumD4(y.AsX().(VecPhysical), tmp.AsX().(VecPhysical))
}

// hsumD4 leaves in x's low dword the exact sum of its four int32 lanes.
func hsumD4(x, tmp VecPhysical) {
	VPSHUFD(U8(0x4e), x, tmp)
	VPADDD(tmp, x, x)
	VPSHUFD(U8(0xb1), x, tmp)
	VPADDD(tmp, x, x)
}

// finishLow leaves the low float of the first accumulator in X1 (the
// kernels that accumulate one scalar per token).
func finishLow(acc []Op) {
	if isReg(acc[0]) {
		VMOVAPS(acc[0].(VecPhysical).AsX(), X1)
		return
	}
	VMOVSS(acc[0], X1)
}
