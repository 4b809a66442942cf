package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// reduce16 leaves in X0 the sum of Z0's 16 lanes in _mm512_reduce_add_ps's
// order (ggmlfp.Reduce16): halves added (t[i] = a[i]+a[i+8]), then the
// 128-bit halves of that, then (t0+t2)+(t1+t3). It clobbers X1/Y1.
func reduce16() {
	VEXTRACTF64X4(U8(1), Z0, Y1)
	VADDPS(Y1, Y0, Y0)
	VEXTRACTF128(U8(1), Y0, X1)
	VADDPS(X1, X0, X0)
	VMOVHLPS(X0, X0, X1)
	VADDPS(X1, X0, X0)
	VMOVSHDUP(X0, X1)
	VADDSS(X1, X0, X0)
}

// genVecDotF32 emits vecDotF32AVX512, ggml_vec_dot_f32 on AVX-512 in the
// order of kernels.VecDotF32: four 16-lane FMA accumulators over the first
// n&^63 elements, combined (a0+a2)+(a1+a3) and reduced as
// _mm512_reduce_add_ps; then, up to n&^7, rounded products added one by
// one; the last n%8 with scalar fused multiply-adds.
func genVecDotF32() {
	const fn = "vecDotF32AVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("x"), RSI)
	Load(Param("y"), RDI)
	Load(Param("n"), RCX)
	VXORPS(X0, X0, X0)
	MOVQ(RCX, RDX)
	SHRQ(U8(6), RDX)
	JZ(LabelRef(lbl(fn, "tail")))
	VXORPS(Z2, Z2, Z2)
	VXORPS(Z3, Z3, Z3)
	VXORPS(Z4, Z4, Z4)
	VXORPS(Z5, Z5, Z5)
	Label(lbl(fn, "loop"))
	for j, acc := range []VecPhysical{Z2, Z3, Z4, Z5} {
		VMOVUPS(Mem{Base: RDI, Disp: 64 * j}, Z1)
		VFMADD231PS(Mem{Base: RSI, Disp: 64 * j}, Z1, acc)
	}
	ADDQ(U32(256), RSI)
	ADDQ(U32(256), RDI)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "loop")))
	VADDPS(Z4, Z2, Z2)
	VADDPS(Z5, Z3, Z3)
	VADDPS(Z3, Z2, Z0)
	reduce16()

	Label(lbl(fn, "tail"))
	Comment("Rounded products added in order up to n&^7 (RDX counts them).")
	MOVQ(RCX, RDX)
	ANDQ(U8(56), RDX)
	JZ(LabelRef(lbl(fn, "fma")))
	Label(lbl(fn, "add"))
	VMOVSS(Mem{Base: RSI}, X1)
	VMULSS(Mem{Base: RDI}, X1, X1)
	VADDSS(X1, X0, X0)
	ADDQ(U8(4), RSI)
	ADDQ(U8(4), RDI)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "add")))

	Label(lbl(fn, "fma"))
	ANDQ(U8(7), RCX)
	JZ(LabelRef(lbl(fn, "done")))
	Label(lbl(fn, "fmaloop"))
	VMOVSS(Mem{Base: RSI}, X1)
	VFMADD231SS(Mem{Base: RDI}, X1, X0)
	ADDQ(U8(4), RSI)
	ADDQ(U8(4), RDI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "fmaloop")))

	Label(lbl(fn, "done"))
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// genDotF32Lanes16 emits dotF32Lanes16AVX512, llamafile's tinyBLAS on F32
// (kernels.dotF32WBatch): one 16-lane FMA accumulator over n/16 vectors,
// reduced as _mm512_reduce_add_ps.
func genDotF32Lanes16() {
	const fn = "dotF32Lanes16AVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("x"), RSI)
	Load(Param("y"), RDI)
	Load(Param("n"), RCX)
	VXORPS(Z0, Z0, Z0)
	SHRQ(U8(4), RCX)
	JZ(LabelRef(lbl(fn, "done")))
	Label(lbl(fn, "loop"))
	VMOVUPS(Mem{Base: RDI}, Z1)
	VFMADD231PS(Mem{Base: RSI}, Z1, Z0)
	ADDQ(U8(64), RSI)
	ADDQ(U8(64), RDI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "loop")))
	reduce16()
	Label(lbl(fn, "done"))
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// genFMAAxpy emits fmaAxpyAVX512: acc[i] = fma(x[i], p, acc[i]) for
// i < n, 16 lanes at a time, the tail under a mask (each lane one
// vfmadd231ps, as kernels.FMAAxpy).
func genFMAAxpy() {
	const fn = "fmaAxpyAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("acc"), RDI)
	Load(Param("x"), RSI)
	Load(Param("n"), RCX)
	Load(Param("p"), X2)
	VBROADCASTSS(X2, Z2)
	MOVQ(RCX, RDX)
	SHRQ(U8(4), RDX)
	JZ(LabelRef(lbl(fn, "tail")))
	Label(lbl(fn, "loop"))
	VMOVUPS(Mem{Base: RDI}, Z0)
	VFMADD231PS(Mem{Base: RSI}, Z2, Z0)
	VMOVUPS(Z0, Mem{Base: RDI})
	ADDQ(U8(64), RSI)
	ADDQ(U8(64), RDI)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "loop")))
	Label(lbl(fn, "tail"))
	ANDQ(U8(15), RCX)
	JZ(LabelRef(lbl(fn, "done")))
	MOVL(U32(1), EAX)
	SHLL(CL, EAX)
	DECL(EAX)
	KMOVW(EAX, K1)
	VMOVUPS_Z(Mem{Base: RDI}, K1, Z0)
	VMOVUPS_Z(Mem{Base: RSI}, K1, Z1)
	VFMADD231PS(Z1, Z2, Z0)
	VMOVUPS(Z0, K1, Mem{Base: RDI})
	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// genDotF16Lanes emits dotF16Lanes16AVX512 (accs 1) and
// dotF16Lanes64AVX512 (accs 4): f32 q times F16 k (widened exactly by
// vcvtph2ps), each product rounded and added to lane i mod 16*accs; the
// accumulators combined (a0+a2)+(a1+a3) and reduced as
// _mm512_reduce_add_ps. n is a multiple of 16*accs.
func genDotF16Lanes(fn string, accs int) {
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("q"), RSI)
	Load(Param("k"), RDI)
	Load(Param("n"), RCX)
	regs := []VecPhysical{Z2, Z3, Z4, Z5}[:accs]
	for _, r := range regs {
		VXORPS(r, r, r)
	}
	VXORPS(X0, X0, X0)
	if accs == 1 {
		SHRQ(U8(4), RCX)
	} else {
		SHRQ(U8(6), RCX)
	}
	JZ(LabelRef(lbl(fn, "done")))
	Label(lbl(fn, "loop"))
	for j, acc := range regs {
		VCVTPH2PS(Mem{Base: RDI, Disp: 32 * j}, Z1)
		VMULPS(Mem{Base: RSI, Disp: 64 * j}, Z1, Z1)
		VADDPS(Z1, acc, acc)
	}
	ADDQ(U32(64*accs), RSI)
	ADDQ(U32(32*accs), RDI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "loop")))
	if accs == 4 {
		VADDPS(Z4, Z2, Z2)
		VADDPS(Z5, Z3, Z3)
		VADDPS(Z3, Z2, Z0)
	} else {
		VMOVAPS(Z2, Z0)
	}
	reduce16()
	Label(lbl(fn, "done"))
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// genAxpyF16 emits axpyF16AVX512: acc[i] += p * float(v[i]) for i < n,
// the product rounded before the add (no fusion), 16 lanes at a time and
// the tail under a mask.
func genAxpyF16() {
	const fn = "axpyF16AVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("acc"), RDI)
	Load(Param("v"), RSI)
	Load(Param("n"), RCX)
	Load(Param("p"), X2)
	VBROADCASTSS(X2, Z2)
	MOVQ(RCX, RDX)
	SHRQ(U8(4), RDX)
	JZ(LabelRef(lbl(fn, "tail")))
	Label(lbl(fn, "loop"))
	VCVTPH2PS(Mem{Base: RSI}, Z1)
	VMULPS(Z2, Z1, Z1)
	VADDPS(Mem{Base: RDI}, Z1, Z1)
	VMOVUPS(Z1, Mem{Base: RDI})
	ADDQ(U8(32), RSI)
	ADDQ(U8(64), RDI)
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "loop")))
	Label(lbl(fn, "tail"))
	ANDQ(U8(15), RCX)
	JZ(LabelRef(lbl(fn, "done")))
	MOVL(U32(1), EAX)
	SHLL(CL, EAX)
	DECL(EAX)
	KMOVW(EAX, K1)
	VMOVDQU16_Z(Mem{Base: RSI}, K1, Y1)
	VCVTPH2PS(Y1, Z1)
	VMULPS(Z2, Z1, Z1)
	VMOVUPS_Z(Mem{Base: RDI}, K1, Z0)
	VADDPS(Z0, Z1, Z1)
	VMOVUPS(Z1, K1, Mem{Base: RDI})
	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}
