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
	tailMask()
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
	tailMask()
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

// genKQVSum emits kqvSumAVX512: out[d] for d < n (a multiple of 16) is
// the 16-lane _mm512_reduce_add_ps tree over lanes l of acc[l*vd+d], after
// (width 64) r[l] = (a[l]+a[32+l]) + (a[16+l]+a[48+l]); computed for 16
// consecutive d at once with lane-wise adds in the same tree.
func genKQVSum() {
	const fn = "kqvSumAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("out"), RDI)
	Load(Param("acc"), RSI)
	Load(Param("vd"), R8)
	Load(Param("n"), RCX)
	Load(Param("width"), RDX)
	SHLQ(U8(2), R8) // row stride in bytes
	SHRQ(U8(4), RCX)
	JZ(LabelRef(lbl(fn, "done")))
	MOVQ(R8, R9)
	SHLQ(U8(4), R9) // 16 rows
	Z := []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15}
	CMPQ(RDX, U8(64))
	JE(LabelRef(lbl(fn, "w64")))

	Label(lbl(fn, "w16"))
	MOVQ(RSI, RAX)
	for l := 0; l < 16; l++ {
		VMOVUPS(Mem{Base: RAX}, Z[l])
		ADDQ(R8, RAX)
	}
	tree16(Z)
	VMOVUPS(Z0, Mem{Base: RDI})
	ADDQ(U8(64), RSI)
	ADDQ(U8(64), RDI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "w16")))
	JMP(LabelRef(lbl(fn, "done")))

	Label(lbl(fn, "w64"))
	MOVQ(RSI, RAX)                                 // rows l
	LEAQ(Mem{Base: RSI, Index: R9, Scale: 1}, RBX) // rows 16+l
	LEAQ(Mem{Base: RBX, Index: R9, Scale: 1}, R10) // rows 32+l
	LEAQ(Mem{Base: R10, Index: R9, Scale: 1}, R11) // rows 48+l
	for l := 0; l < 16; l++ {
		VMOVUPS(Mem{Base: RAX}, Z[l])
		VADDPS(Mem{Base: R10}, Z[l], Z[l])
		VMOVUPS(Mem{Base: RBX}, Z16)
		VADDPS(Mem{Base: R11}, Z16, Z16)
		VADDPS(Z16, Z[l], Z[l])
		ADDQ(R8, RAX)
		ADDQ(R8, RBX)
		ADDQ(R8, R10)
		ADDQ(R8, R11)
	}
	tree16(Z)
	VMOVUPS(Z0, Mem{Base: RDI})
	ADDQ(U8(64), RSI)
	ADDQ(U8(64), RDI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "w64")))

	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// tree16 leaves in z[0] the lane-wise _mm512_reduce_add_ps tree of the 16
// vectors z: t[i] = z[i]+z[i+8], u[i] = t[i]+t[i+4], (u0+u2)+(u1+u3).
func tree16(z []VecPhysical) {
	for i := 0; i < 8; i++ {
		VADDPS(z[i+8], z[i], z[i])
	}
	for i := 0; i < 4; i++ {
		VADDPS(z[i+4], z[i], z[i])
	}
	VADDPS(z[2], z[0], z[0])
	VADDPS(z[3], z[1], z[1])
	VADDPS(z[1], z[0], z[0])
}

// genExpBlock emits expBlockAVX512: for the m <= 16 values of s,
// s[i] = ggml_v_expf(s[i] - mx) in ggmlfp.VExpf's arithmetic, and returns
// the _mm512_reduce_add_ps of the 16 results (zeros past m).
func genExpBlock() {
	const fn = "expBlockAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("s"), RDI)
	Load(Param("m"), RCX)
	Load(Param("mx"), X1)
	tailMask()
	VBROADCASTSS(X1, Z1)
	VMOVUPS_Z(Mem{Base: RDI}, K1, Z2)
	VSUBPS(Z1, Z2, Z2) // x = s - mx
	vexpf()
	VMOVAPS_Z(Z10, K1, Z0)
	VMOVUPS(Z0, K1, Mem{Base: RDI})
	reduce16()
	VZEROUPPER()
	Store(X0, ReturnIndex(0))
	RET()
}

// f32const broadcasts a float32 constant (by its bits) into z.
func f32const(name string, bits uint32, z VecPhysical) {
	VBROADCASTSS(table(name, []byte{byte(bits), byte(bits >> 8), byte(bits >> 16), byte(bits >> 24)}), z)
}

// vexpf sets Z10 = ggml_v_expf(Z2) lane by lane in ggmlfp.VExpf's
// arithmetic; it clobbers Z3-Z20 and K2-K5.
func vexpf() {
	f32const("expR", 0x4b400000, Z3)     // 0x1.8p23
	f32const("expLog2e", 0x3fb8aa3b, Z4) // 0x1.715476p+0
	// z = fma(x, log2e, r); n = z - r
	VMOVAPS(Z3, Z5)
	VFMADD231PS(Z4, Z2, Z5)
	VSUBPS(Z3, Z5, Z5) // n
	// b = fma(-n, c1, fma(-n, c0, x))
	f32const("expLn2Hi", 0x3f317200, Z6) // 0x1.62e4p-1
	f32const("expLn2Lo", 0x35bfbe8e, Z7) // 0x1.7f7d1cp-20
	VMOVAPS(Z2, Z8)
	VFNMADD231PS(Z6, Z5, Z8)
	VFNMADD231PS(Z7, Z5, Z8) // b
	VMULPS(Z8, Z8, Z9)       // u = b*b
	// j = fma(fma(fma(c5, b, c4), u, fma(c3, b, c2)), u, fma(c1, b, 1))
	f32const("expC5", 0x3c072010, Z10) // 0x1.0e4020p-7
	f32const("expC4", 0x3d2b9f17, Z11) // 0x1.573e2ep-5
	VFMADD213PS(Z11, Z8, Z10)          // Z10 = c5*b + c4
	f32const("expC3", 0x3e2aaf33, Z12) // 0x1.555e66p-3
	f32const("expC2", 0x3efffedb, Z13) // 0x1.fffdb6p-2
	VFMADD213PS(Z13, Z8, Z12)          // Z12 = c3*b + c2
	VFMADD213PS(Z12, Z9, Z10)          // Z10 = Z10*u + Z12
	f32const("expC1", 0x3f7ffff6, Z14) // 0x1.ffffecp-1
	f32const("expOne", 0x3f800000, Z15)
	VFMADD213PS(Z15, Z8, Z14) // Z14 = c1*b + 1
	VFMADD213PS(Z14, Z9, Z10) // j = Z10*u + Z14
	VSCALEFPS(Z5, Z10, Z10)   // j * 2^n
	// |n| > 192: 0 for n <= 0, +Inf above.
	f32const("expAbs", 0x7fffffff, Z16)
	VANDPS(Z16, Z5, Z17)
	f32const("exp192", 0x43400000, Z18)
	VCMPPS(U8(0x1e), Z18, Z17, K2) // |n| > 192 (ordered, quiet)
	VXORPS(Z19, Z19, Z19)
	VCMPPS(U8(0x1e), Z19, Z5, K3) // n > 0
	KANDW(K2, K3, K4)
	KANDNW(K2, K3, K5) // K5 = ~K3 & K2: |n| > 192, n <= 0
	f32const("expInf", 0x7f800000, Z20)
	VMOVAPS(Z20, K4, Z10)
	VMOVAPS(Z19, K5, Z10)
}

// genSwiglu emits swigluAVX512: gate[i] = silu(gate[i]) * up[i] for i < n
// (a multiple of 16) with ggml_v_silu, x / (1 + v_expf(0 - x)), in
// ggmlfp.VSilu's arithmetic.
func genSwiglu() {
	const fn = "swigluAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("gate"), RDI)
	Load(Param("up"), RSI)
	Load(Param("n"), RCX)
	SHRQ(U8(4), RCX)
	JZ(LabelRef(lbl(fn, "done")))
	Label(lbl(fn, "loop"))
	VMOVUPS(Mem{Base: RDI}, Z21)
	VXORPS(Z2, Z2, Z2)
	VSUBPS(Z21, Z2, Z2) // 0 - x
	vexpf()
	f32const("expOne", 0x3f800000, Z15)
	VADDPS(Z15, Z10, Z10)
	VDIVPS(Z10, Z21, Z21)
	VMULPS(Mem{Base: RSI}, Z21, Z21)
	VMOVUPS(Z21, Mem{Base: RDI})
	ADDQ(U8(64), RDI)
	ADDQ(U8(64), RSI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "loop")))
	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// genDotF16Lanes16Rows emits dotF16Lanes16RowsAVX512: out[j] =
// dotF16Lanes16AVX512(q, k[j*kstride:], n) for j < rows, four rows at a
// time on independent accumulators (the single kernel's add chain is its
// latency; each row's arithmetic is unchanged).
func genDotF16Lanes16Rows() {
	const fn = "dotF16Lanes16RowsAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("out"), R8)
	Load(Param("q"), RSI)
	Load(Param("k"), RDI)
	Load(Param("kstride"), R9)
	SHLQ(U8(1), R9) // bytes
	Load(Param("n"), R10)
	SHRQ(U8(4), R10)
	Load(Param("rows"), R11)
	TESTQ(R10, R10)
	JZ(LabelRef(lbl(fn, "done")))
	accs := []VecPhysical{Z2, Z3, Z4, Z5}
	body := func(nr int, name string) {
		Label(lbl(fn, name))
		CMPQ(R11, U8(nr))
		JLT(LabelRef(lbl(fn, name+"_end")))
		for _, a := range accs[:nr] {
			VXORPS(a, a, a)
		}
		MOVQ(RSI, RAX)
		MOVQ(RDI, RBX)
		MOVQ(R10, RCX)
		Label(lbl(fn, name+"_loop"))
		VMOVUPS(Mem{Base: RAX}, Z6)
		MOVQ(RBX, RDX)
		for _, a := range accs[:nr] {
			VCVTPH2PS(Mem{Base: RDX}, Z1)
			VMULPS(Z6, Z1, Z1)
			VADDPS(Z1, a, a)
			ADDQ(R9, RDX)
		}
		ADDQ(U8(64), RAX)
		ADDQ(U8(32), RBX)
		DECQ(RCX)
		JNZ(LabelRef(lbl(fn, name+"_loop")))
		for i, a := range accs[:nr] {
			VMOVAPS(a, Z0)
			reduce16()
			VMOVSS(X0, Mem{Base: R8, Disp: 4 * i})
		}
		ADDQ(U8(4*nr), R8)
		for i := 0; i < nr; i++ {
			ADDQ(R9, RDI)
		}
		SUBQ(U8(nr), R11)
		JMP(LabelRef(lbl(fn, name)))
		Label(lbl(fn, name+"_end"))
	}
	body(4, "rows4")
	body(1, "rows1")
	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// genAxpyF16Rows emits axpyF16RowsAVX512: for j < rows, with l = j &
// (width-1), acc[l*vd:(l+1)*vd] += p[j] * float(v[j*vstride:][:vd]), each
// row exactly axpyF16AVX512 (vd a multiple of 16); consecutive rows update
// different lanes' accumulators, so they overlap.
func genAxpyF16Rows() {
	const fn = "axpyF16RowsAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Load(Param("acc"), RDI)
	Load(Param("vd"), R8)
	Load(Param("width"), R9)
	DECQ(R9)
	Load(Param("v"), RSI)
	Load(Param("vstride"), R10)
	SHLQ(U8(1), R10)
	Load(Param("p"), R11)
	Load(Param("rows"), R12)
	MOVQ(R8, R13)
	SHLQ(U8(2), R13) // row bytes of acc
	SHRQ(U8(4), R8)  // 16-lane steps
	TESTQ(R8, R8)
	JZ(LabelRef(lbl(fn, "done")))
	XORQ(RBX, RBX) // j
	Label(lbl(fn, "row"))
	CMPQ(RBX, R12)
	JGE(LabelRef(lbl(fn, "done")))
	VBROADCASTSS(Mem{Base: R11, Index: RBX, Scale: 4}, Z2)
	MOVQ(RBX, RAX)
	ANDQ(R9, RAX)
	IMULQ(R13, RAX)
	ADDQ(RDI, RAX)
	MOVQ(RSI, RDX)
	MOVQ(R8, RCX)
	Label(lbl(fn, "loop"))
	VCVTPH2PS(Mem{Base: RDX}, Z1)
	VMULPS(Z2, Z1, Z1)
	VADDPS(Mem{Base: RAX}, Z1, Z1)
	VMOVUPS(Z1, Mem{Base: RAX})
	ADDQ(U8(32), RDX)
	ADDQ(U8(64), RAX)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "loop")))
	ADDQ(R10, RSI)
	INCQ(RBX)
	JMP(LabelRef(lbl(fn, "row")))
	Label(lbl(fn, "done"))
	VZEROUPPER()
	RET()
}

// genF16Convert emits toF16AVX512 (dst[i] = F16 bits of src[i], rounded
// to nearest even by VCVTPS2PH, as ggml's F16C conversion) and
// roundF16AVX512 (x[i] = float32(F16(x[i])) in place), 16 values at a
// time and the tail under a mask.
func genF16Convert() {
	for _, inPlace := range []bool{false, true} {
		fn := "toF16AVX512"
		if inPlace {
			fn = "roundF16AVX512"
		}
		Implement(fn)
		Attributes(NOSPLIT)
		if inPlace {
			Load(Param("x"), RSI)
			MOVQ(RSI, RDI)
		} else {
			Load(Param("dst"), RDI)
			Load(Param("src"), RSI)
		}
		Load(Param("n"), RCX)
		MOVQ(RCX, RDX)
		SHRQ(U8(4), RDX)
		JZ(LabelRef(lbl(fn, "tail")))
		Label(lbl(fn, "loop"))
		VMOVUPS(Mem{Base: RSI}, Z0)
		VCVTPS2PH(U8(0), Z0, Y1)
		if inPlace {
			VCVTPH2PS(Y1, Z1)
			VMOVUPS(Z1, Mem{Base: RDI})
			ADDQ(U8(64), RDI)
		} else {
			VMOVDQU(Y1, Mem{Base: RDI})
			ADDQ(U8(32), RDI)
		}
		ADDQ(U8(64), RSI)
		DECQ(RDX)
		JNZ(LabelRef(lbl(fn, "loop")))
		Label(lbl(fn, "tail"))
		ANDQ(U8(15), RCX)
		JZ(LabelRef(lbl(fn, "done")))
		tailMask()
		VMOVUPS_Z(Mem{Base: RSI}, K1, Z0)
		VCVTPS2PH(U8(0), Z0, Y1)
		if inPlace {
			VCVTPH2PS(Y1, Z1)
			VMOVUPS(Z1, K1, Mem{Base: RDI})
		} else {
			VMOVDQU16(Y1, K1, Mem{Base: RDI})
		}
		Label(lbl(fn, "done"))
		VZEROUPPER()
		RET()
	}
}
