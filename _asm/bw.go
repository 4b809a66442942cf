package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genReadBW emits readBytesAVX512, the streaming-read reference the kernel
// benchmarks compare against: it loads every byte of n (a multiple of 256)
// with 512-bit loads and returns a checksum so the loads cannot be
// dropped. The first n&^1023 bytes are read as four interleaved streams
// (one per quarter), the fastest way to read memory measured on the 2-core
// AVX-512 machine (26-28 GB/s on 2 threads against 23-25 GB/s for one
// stream with or without software prefetch); the rest as one stream.
func genReadBW() {
	const fn = "readBytesAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Comment("XOR of every 64-byte line of p[0:n], folded to 64 bits.")
	Load(Param("p"), RSI)
	Load(Param("n"), RCX)
	VPXORQ(Z0, Z0, Z0)
	VPXORQ(Z1, Z1, Z1)
	VPXORQ(Z2, Z2, Z2)
	VPXORQ(Z3, Z3, Z3)
	Comment("Four streams over the quarters of n&^1023: DI, R8, R9 = SI + q, 2q, 3q.")
	MOVQ(RCX, RDX)
	SHRQ(U8(10), RDX)
	JZ(LabelRef(lbl(fn, "tail")))
	MOVQ(RDX, RAX)
	SHLQ(U8(8), RAX) // q
	LEAQ(Mem{Base: RSI, Index: RAX, Scale: 1}, RDI)
	LEAQ(Mem{Base: RDI, Index: RAX, Scale: 1}, R8)
	LEAQ(Mem{Base: R8, Index: RAX, Scale: 1}, R9)
	Label(lbl(fn, "loop4"))
	for _, p := range []GPPhysical{RSI, RDI, R8, R9} {
		VPXORQ(Mem{Base: p}, Z0, Z0)
		VPXORQ(Mem{Base: p, Disp: 64}, Z1, Z1)
		VPXORQ(Mem{Base: p, Disp: 128}, Z2, Z2)
		VPXORQ(Mem{Base: p, Disp: 192}, Z3, Z3)
		ADDQ(U32(256), p)
	}
	DECQ(RDX)
	JNZ(LabelRef(lbl(fn, "loop4")))
	MOVQ(R9, RSI)
	Label(lbl(fn, "tail"))
	ANDQ(U32(1023), RCX)
	SHRQ(U8(8), RCX)
	JZ(LabelRef(lbl(fn, "fold")))
	Label(lbl(fn, "loop"))
	VPXORQ(Mem{Base: RSI}, Z0, Z0)
	VPXORQ(Mem{Base: RSI, Disp: 64}, Z1, Z1)
	VPXORQ(Mem{Base: RSI, Disp: 128}, Z2, Z2)
	VPXORQ(Mem{Base: RSI, Disp: 192}, Z3, Z3)
	ADDQ(U32(256), RSI)
	DECQ(RCX)
	JNZ(LabelRef(lbl(fn, "loop")))
	Label(lbl(fn, "fold"))
	VPXORQ(Z1, Z0, Z0)
	VPXORQ(Z3, Z2, Z2)
	VPXORQ(Z2, Z0, Z0)
	VEXTRACTI64X4(U8(1), Z0, Y1)
	VPXORQ(Y1, Y0, Y0)
	VEXTRACTI32X4(U8(1), Y0, X1)
	VPXORQ(X1, X0, X0)
	VPSRLDQ(U8(8), X0, X1)
	VPXORQ(X1, X0, X0)
	VMOVQ(X0, RAX)
	Store(RAX, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// genPause emits cpuRelax, one PAUSE for the pool's spin loops.
func genPause() {
	Implement("cpuRelax")
	Attributes(NOSPLIT)
	Comment("PAUSE: tell the core this is a spin-wait loop.")
	PAUSE()
	RET()
}
