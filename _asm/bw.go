package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genReadBW emits readBytesAVX512, the streaming-read reference the kernel
// benchmarks compare against: it loads every byte of n (a multiple of 256)
// with 512-bit loads, prefetching 6 KiB ahead like the dot kernels, and
// returns a checksum so the loads cannot be dropped.
func genReadBW() {
	const fn = "readBytesAVX512"
	Implement(fn)
	Attributes(NOSPLIT)
	Comment("XOR of every 64-byte line of p[0:n], folded to 64 bits.")
	Load(Param("p"), RSI)
	Load(Param("n"), RCX)
	SHRQ(U8(8), RCX)
	VPXORQ(Z0, Z0, Z0)
	VPXORQ(Z1, Z1, Z1)
	VPXORQ(Z2, Z2, Z2)
	VPXORQ(Z3, Z3, Z3)
	TESTQ(RCX, RCX)
	JZ(LabelRef(lbl(fn, "fold")))
	Label(lbl(fn, "loop"))
	PREFETCHT0(Mem{Base: RSI, Disp: 6144})
	PREFETCHT0(Mem{Base: RSI, Disp: 6144 + 64})
	PREFETCHT0(Mem{Base: RSI, Disp: 6144 + 128})
	PREFETCHT0(Mem{Base: RSI, Disp: 6144 + 192})
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
