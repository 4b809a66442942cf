package main

import (
	"fmt"

	"github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	"github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

// Neither avo nor the Go assembler knows the AMX instructions, so they are
// emitted as bytes. amxOp encodes the register forms used here (VEX.128,
// map 0F38, W0): tile loads and stores address [base + index*1 + disp32],
// the index register holding the row stride.

// gpNum is the hardware number of a general-purpose register.
func gpNum(r reg.GPPhysical) byte {
	names := map[string]byte{"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SP": 4, "BP": 5, "SI": 6, "DI": 7,
		"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R12": 12, "R13": 13, "R14": 14, "R15": 15}
	n, ok := names[r.As64().Asm()]
	if !ok {
		panic("amx: no register number for " + r.Asm())
	}
	return n
}

// emitBytes writes raw instruction bytes, with the instruction's mnemonic
// as a comment.
func emitBytes(mnemonic string, b []byte) {
	build.Comment(mnemonic)
	for _, x := range b {
		build.Instruction(&ir.Instruction{Opcode: "BYTE", Operands: []operand.Op{operand.U8(x)}})
	}
}

// vex3 is a three-byte VEX prefix for map 0F38, W0, L0, with the inverted
// R, X, B extension bits, vvvv (a tile number or 0) and pp.
func vex3(r, x, b byte, vvvv, pp byte) []byte {
	b1 := byte(0x02) // map 0F38
	if r&8 == 0 {
		b1 |= 0x80
	}
	if x&8 == 0 {
		b1 |= 0x40
	}
	if b&8 == 0 {
		b1 |= 0x20
	}
	b2 := (^vvvv&0xf)<<3 | pp
	return []byte{0xc4, b1, b2}
}

// tileMem encodes opcode op (pp selects the prefix) on tile t and memory
// [base + index + disp].
func tileMem(name string, pp, op, t byte, base, index reg.GPPhysical, disp int32) {
	bn, in := gpNum(base), gpNum(index)
	if in == 4 {
		panic("amx: SP cannot be an index")
	}
	b := vex3(0, in, bn, 0, pp)
	b = append(b, op, 0x84|(t&7)<<3, (in&7)<<3|bn&7) // mod 10 (disp32), rm 100 (SIB)
	b = append(b, byte(disp), byte(disp>>8), byte(disp>>16), byte(disp>>24))
	emitBytes(fmt.Sprintf("%s %d(%s)(%s*1), tmm%d", name, disp, base.Asm(), index.Asm(), t), b)
}

// TILELOADD loads tile t from rows index bytes apart at base+disp.
func TILELOADD(t byte, base, index reg.GPPhysical, disp int32) {
	tileMem("TILELOADD", 3, 0x4b, t, base, index, disp)
}

// TILESTORED stores tile t to rows index bytes apart at base+disp.
func TILESTORED(t byte, base, index reg.GPPhysical, disp int32) {
	tileMem("TILESTORED", 2, 0x4b, t, base, index, disp)
}

// TDPBSSD: tile c[m][n] += Σ_k int8 a[m][k] * int8 b[k/4][4n+k%4].
func TDPBSSD(c, a, b byte) {
	emitBytes(fmt.Sprintf("TDPBSSD tmm%d += tmm%d . tmm%d", c, a, b),
		append(vex3(0, 0, 0, b, 3), 0x5e, 0xc0|c<<3|a))
}

// TILEZERO clears tile t.
func TILEZERO(t byte) {
	emitBytes(fmt.Sprintf("TILEZERO tmm%d", t), append(vex3(0, 0, 0, 0, 3), 0x49, 0xc0|t<<3))
}

// LDTILECFG loads the tile configuration at [base].
func LDTILECFG(base reg.GPPhysical) {
	bn := gpNum(base)
	if bn&7 == 4 || bn&7 == 5 {
		panic("amx: LDTILECFG base needs no SIB or displacement here")
	}
	emitBytes("LDTILECFG ("+base.Asm()+")", append(vex3(0, 0, bn, 0, 0), 0x49, bn&7))
}

// TILERELEASE returns the tiles to their initial state.
func TILERELEASE() {
	emitBytes("TILERELEASE", append(vex3(0, 0, 0, 0, 0), 0x49, 0xc0))
}

// bcst emits a three-operand EVEX instruction with an embedded broadcast
// of the 32-bit memory operand src2: "OP.BCST src2, src1, dst".
func bcst(op string, src2, src1, dst operand.Op, accumulates bool) {
	in := []operand.Op{src2, src1}
	if accumulates {
		in = append(in, dst)
	}
	build.Instruction(&ir.Instruction{
		Opcode:   op,
		Suffixes: []string{"BCST"},
		Operands: []operand.Op{src2, src1, dst},
		Inputs:   in,
		Outputs:  []operand.Op{dst},
		ISA:      []string{"AVX512F"},
	})
}

// fullTiles is the configuration of eight tiles of 16 rows of 64 bytes.
func fullTiles(name string) operand.Mem {
	rows, colsb := make([]int, 8), make([]int, 8)
	for t := range rows {
		rows[t], colsb[t] = 16, 64
	}
	return tileConfig(name, rows, colsb)
}

// groupsDoc is a groups kernel's doc comment: what it computes for the
// weight type typ, formula being acc's update, more the rest.
func groupsDoc(fn, typ, formula string, more ...string) []string {
	return append([]string{
		fn + " computes, for 16 weight rows (rows of them read from w, rowBytes apart;",
		"the others are left over from earlier calls and their results are to be",
		"ignored) and ngroups groups of 16 packed tokens, over nb " + typ + " blocks:",
		"",
		"\tacc[256*g+16*r+t] = " + formula,
		"",
		"(returned transposed after the accumulators: acc[256*(ngroups+g)+16*t+r])",
	}, more...)
}

// tileConfig returns a 64-byte LDTILECFG block (palette 1) giving tiles
// 0..len-1 the rows and bytes per row listed.
func tileConfig(name string, rows, colsb []int) operand.Mem {
	b := make([]byte, 64)
	b[0] = 1
	for t := range rows {
		b[16+2*t] = byte(colsb[t])
		b[17+2*t] = byte(colsb[t] >> 8)
		b[48+t] = byte(rows[t])
	}
	return table(name, b)
}

// Layout shared by the AMX kernels and kernels/amx.go.
//
// Packed activations, per block of 256 elements and group of 16 tokens
// (amxPackBytes): B tiles covering the block in 64 rows of 64 bytes (row k
// holds elements 4k..4k+3 of each of the 16 tokens, so the rows of a
// sub-block of e elements start at e*16 bytes per sub-block), the 16
// tokens' Q8_K scales d as f32 at amxPackD, and at amxPackSums four 64-byte
// vectors: vector p holds, per token, the int16 sums of the 32-element
// sub-blocks 2p and 2p+1.
//
// Scratch, per call: one record per weight row (the A tiles' rows of the
// block and the kernel's other per-row values), then the kernel's 16x16
// int32 result tiles; at most amxScratch bytes (kernels/amx.go).
const (
	amxPackBytes = 4416
	amxPackD     = 4096
	amxPackSums  = 4160
)

// groupsKernel is a tile kernel over several token groups per call: phase
// 1 unpacks a block of 16 weight rows into per-row records once, then for
// every token group the kernel's tile code (tiles) leaves int32 tiles in
// the scratch after the records and its row code (row) turns row r of them
// into the float accumulator. The skeleton keeps these registers:
//
//	R8  acc                  R9  rowBytes       R10 end of the records
//	R11 row 0's block        R12 packed block   R13 blocks left
//	R14 scratch (records)    R15 record being filled (phase 1)
//	SI  block being unpacked (phase 1), free in the group loop
//	CX  64                   DI  record bytes (tile stride)
//	BX  the group's packed block, DX its accumulators, AX groups left
//	Z14 the scatter's indices; Z24-Z31 the kernel's constants
//
// unpack may use AX, BX, DX and Z16-Z23; groupSetup and row may use Z0-Z13
// and Z15-Z23 (row r's accumulator is passed in, loaded).
type groupsKernel struct {
	name       string
	doc        []string
	wBlock     int
	rec        int // record bytes per row
	cTiles     int // int32 result tiles per group, stored 1024 bytes apart
	cfg        operand.Mem
	setup      func()
	unpack     func()
	tiles      func()                                                      // tile work of the group at BX; results stored at R14+16*rec
	groupSetup func()                                                      // per group, before the rows (packed block at BX)
	row        func(r, cOff int, acc reg.VecPhysical, v []reg.VecPhysical) // row r's update of acc
}

// gen emits
//
//	func name(acc *float32, w *byte, rowBytes int, rows int, b *byte, gstride int, ngroups int, nb int, scratch *byte)
//
// acc holds 2*ngroups 16x16 tiles: the accumulators, then the results
// transposed (acc[256*(ngroups+g) + 16*t + r]); the packed tokens of group
// g start at b + g*gstride.
func (k *groupsKernel) gen() {
	fn := k.name
	build.Implement(fn)
	build.Attributes(build.NOSPLIT)
	build.Comment(k.doc...)
	build.Load(build.Param("acc"), reg.R8)
	build.Load(build.Param("w"), reg.R11)
	build.Load(build.Param("rowBytes"), reg.R9)
	build.Load(build.Param("rows"), reg.R10)
	build.Load(build.Param("b"), reg.R12)
	build.Load(build.Param("nb"), reg.R13)
	build.Load(build.Param("scratch"), reg.R14)
	build.IMUL3Q(operand.U32(k.rec), reg.R10, reg.R10)
	build.ADDQ(reg.R14, reg.R10)
	build.LEAQ(k.cfg, reg.RAX)
	LDTILECFG(reg.RAX)
	build.MOVQ(operand.U32(64), reg.RCX)
	build.MOVQ(operand.U32(k.rec), reg.RDI)
	k.setup()
	build.Comment("Z14: the scatter's indices 0, 16, .., 240.")
	var idx []byte
	for t := 0; t < 16; t++ {
		idx = append(idx, byte(16*t), 0, 0, 0)
	}
	build.VMOVDQU32(table("amxTransposeIdx", idx), reg.Z14)
	build.Comment("acc = 0")
	build.Load(build.Param("ngroups"), reg.RAX)
	build.MOVQ(reg.R8, reg.RDX)
	build.VPXORD(reg.Z16, reg.Z16, reg.Z16)
	build.Label(lbl(fn, "zero"))
	for r := 0; r < 16; r++ {
		build.VMOVUPS(reg.Z16, operand.Mem{Base: reg.RDX, Disp: 64 * r})
	}
	build.ADDQ(operand.U32(1024), reg.RDX)
	build.DECQ(reg.RAX)
	build.JNZ(operand.LabelRef(lbl(fn, "zero")))

	build.Label(lbl(fn, "block"))
	build.Comment("Phase 1: each row's block into its record.")
	build.MOVQ(reg.R11, reg.RSI)
	build.MOVQ(reg.R14, reg.R15)
	build.Label(lbl(fn, "unpack"))
	k.unpack()
	build.ADDQ(reg.R9, reg.RSI)
	build.ADDQ(operand.U32(k.rec), reg.R15)
	build.CMPQ(reg.R15, reg.R10)
	build.JNE(operand.LabelRef(lbl(fn, "unpack")))

	build.CMPQ(reg.R13, operand.U8(1))
	build.JEQ(operand.LabelRef(lbl(fn, "last")))
	k.groupLoop("group", false)
	build.ADDQ(operand.U32(k.wBlock), reg.R11)
	build.ADDQ(operand.U32(amxPackBytes), reg.R12)
	build.DECQ(reg.R13)
	build.JMP(operand.LabelRef(lbl(fn, "block")))
	build.Label(lbl(fn, "last"))
	k.groupLoop("lastgroup", true)

	TILERELEASE()
	build.VZEROUPPER()
	build.RET()
}

// groupLoop emits the loop over the token groups of one block. On the
// last block (last) the results go out transposed by a scatter, after the
// ngroups accumulator tiles.
func (k *groupsKernel) groupLoop(name string, last bool) {
	fn := k.name
	build.Comment("Token groups: BX the group's packed block, DX its accumulators.")
	build.MOVQ(reg.R12, reg.RBX)
	build.MOVQ(reg.R8, reg.RDX)
	build.Load(build.Param("ngroups"), reg.RAX)
	gs, err := build.Param("gstride").Resolve()
	if err != nil {
		panic(err)
	}
	if last {
		build.Comment("R10 = the offset of the transposed results (phase 1 is done with it).")
		build.MOVQ(reg.RAX, reg.R10)
		build.SHLQ(operand.U8(10), reg.R10)
	}
	build.Label(lbl(fn, name))
	if last {
		build.LEAQ(operand.Mem{Base: reg.RDX, Index: reg.R10, Scale: 1}, reg.R15)
	}
	k.tiles()
	k.groupSetup()
	cOff := 16 * k.rec
	for r := 0; r < 16; r++ {
		v := []reg.VecPhysical{reg.Z0, reg.Z1, reg.Z2, reg.Z3, reg.Z4, reg.Z5, reg.Z6, reg.Z7}
		if r%2 == 1 {
			v = []reg.VecPhysical{reg.Z16, reg.Z17, reg.Z18, reg.Z19, reg.Z20, reg.Z21, reg.Z22, reg.Z23}
		}
		acc := v[0]
		build.VMOVUPS(operand.Mem{Base: reg.RDX, Disp: 64 * r}, acc)
		k.row(r, cOff, acc, v[1:])
		if !last {
			build.VMOVUPS(acc, operand.Mem{Base: reg.RDX, Disp: 64 * r})
			continue
		}
		build.KXNORW(reg.K3, reg.K3, reg.K3)
		build.VSCATTERDPS(acc, reg.K3, operand.Mem{Base: reg.R15, Index: reg.Z14, Scale: 4, Disp: 4 * r})
	}
	build.ADDQ(gs.Addr, reg.RBX)
	build.ADDQ(operand.U32(1024), reg.RDX)
	build.DECQ(reg.RAX)
	build.JNZ(operand.LabelRef(lbl(fn, name)))
}

// Q4_K on tiles with the scales folded into the levels. A 6-bit scale s is
// 8*hi + lo with hi, lo < 8, so level*lo and level*hi (at most 105) are
// int8: two tiles of levels times scale parts, multiplied by the tokens'
// q8 over whole 64-element chunks, accumulate the block's exact
// Σ_j scale_j * (levels_j . q8_j) as 8*C_hi + C_lo without a per-sub-block
// step.
const (
	q4kGRec     = 576 // record: A_lo[256], A_hi[256], mins int16[8], d, dmin
	q4kGRecMins = 512
	q4kGRecD    = 528
)

// amxQ4KGroups is the Q4_K x Q8_K groups kernel. Tiles: 0, 1 C_lo, C_hi;
// the chunks alternate between the sets (B, A_lo, A_hi) = (2, 3, 4) and
// (5, 6, 7).
func amxQ4KGroups() *groupsKernel {
	const fn = "amxQ4KGroups"
	rec := func(r, off int) operand.Mem { return operand.Mem{Base: reg.R14, Disp: r*q4kGRec + off} }
	sums := []reg.VecPhysical{reg.Z8, reg.Z9, reg.Z10, reg.Z11}
	return &groupsKernel{
		name: fn,
		doc: groupsDoc(fn, "Q4_K", "Σ_blocks fma(float(sumi), d_r*d_t, ·) then fnma(float(mins), dmin_r*d_t, ·)",
			"with sumi = Σ_j scale_rj * (levels_rj . q8_tj) = 8*C_hi + C_lo exact in int32",
			"(AMX TDPBSSD on levels times the high and low 3 bits of the scales) and",
			"mins = Σ_j min_rj * sum_tj; acc starts at 0."),
		wBlock: q4kBytes, rec: q4kGRec, cTiles: 2,
		cfg: fullTiles(fn + "Tiles"),
		setup: func() {
			mins := table("amxQ4KScaleCtl", []byte{0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15})
			sc, _ := q4kScaleTables()
			scCtl := table("q4kScaleCtl", sc)
			build.Comment("Constants: nibble matrices, mins shuffle, 7s, the chunks' scale shuffles.")
			build.VMOVDQU64(nibbleMatrices(), reg.Z31)
			build.VMOVDQU32(mins, reg.X30)
			build.VMOVDQU64(table("splat7", splat(7, 64)), reg.Z24)
			for c, z := range []reg.VecPhysical{reg.Z26, reg.Z27, reg.Z28, reg.Z29} {
				build.VMOVDQU64(scCtl.Offset(64*c), z)
			}
			qwordMasks()
		},
		unpack: func() {
			build.VMOVD(operand.Mem{Base: reg.RSI}, reg.X19)
			build.VCVTPH2PS(reg.X19, reg.X19)
			build.VMOVQ(reg.X19, operand.Mem{Base: reg.R15, Disp: q4kGRecD})
			q4kUnpackScales(reg.Z16, reg.RBX, reg.RDX)
			build.VPSHUFB(reg.X30, reg.X16, reg.X17)
			build.VPSRLDQ(operand.U8(8), reg.X17, reg.X17)
			build.VPMOVZXBW(reg.X17, reg.X18)
			build.VMOVDQU32(reg.X18, operand.Mem{Base: reg.R15, Disp: q4kGRecMins})
			build.Comment("Z20 = scale & 7, Z21 = scale >> 3 (bytes; the scales are 6-bit).")
			build.VPANDD(reg.Z24, reg.Z16, reg.Z20)
			build.VPSRLW(operand.U8(3), reg.Z16, reg.Z21)
			build.VPANDD(reg.Z24, reg.Z21, reg.Z21)
			for c, ctl := range []reg.VecPhysical{reg.Z26, reg.Z27, reg.Z28, reg.Z29} {
				build.Commentf("Chunk %d: levels, then levels x (scale & 7) and levels x (scale >> 3) as bytes.", c)
				build.VBROADCASTI64X4(operand.Mem{Base: reg.RSI, Disp: 16 + 32*c}, reg.Z22)
				VGF2P8AFFINEQB(operand.U8(0), reg.Z31, reg.Z22, reg.Z22)
				for part, src := range []reg.VecPhysical{reg.Z20, reg.Z21} {
					build.Comment("Even bytes: words (s, 0) times the levels; odd bytes: (0, s).")
					build.VPSHUFB(ctl, src, reg.Z16)
					build.VPSLLW(operand.U8(8), reg.Z16, reg.Z17)
					build.VPMADDUBSW(reg.Z16, reg.Z22, reg.Z18)
					build.VPMADDUBSW(reg.Z17, reg.Z22, reg.Z19)
					build.VPSLLW(operand.U8(8), reg.Z19, reg.Z19)
					build.VPORD(reg.Z18, reg.Z19, reg.Z19)
					build.VMOVDQU64(reg.Z19, operand.Mem{Base: reg.R15, Disp: 256*part + 64*c})
				}
			}
		},
		tiles: func() {
			TILEZERO(0)
			TILEZERO(1)
			for c := 0; c < 4; c++ {
				s := byte(3 * (c % 2))
				TILELOADD(2+s, reg.RBX, reg.RCX, int32(1024*c))
				TILELOADD(3+s, reg.R14, reg.RDI, int32(64*c))
				TILELOADD(4+s, reg.R14, reg.RDI, int32(256+64*c))
				TDPBSSD(0, 3+s, 2+s)
				TDPBSSD(1, 4+s, 2+s)
			}
			TILESTORED(0, reg.R14, reg.RCX, 16*q4kGRec)
			TILESTORED(1, reg.R14, reg.RCX, 16*q4kGRec+1024)
		},
		groupSetup: func() {
			for p, z := range sums {
				build.VMOVDQU64(operand.Mem{Base: reg.RBX, Disp: amxPackSums + 64*p}, z)
			}
			build.VMOVUPS(operand.Mem{Base: reg.RBX, Disp: amxPackD}, reg.Z12)
		},
		row: func(r, cOff int, acc reg.VecPhysical, v []reg.VecPhysical) {
			sumi, dd, mn, dm := v[0], v[1], v[2], v[3]
			build.VMOVDQU64(operand.Mem{Base: reg.R14, Disp: cOff + 1024 + 64*r}, sumi)
			build.VPSLLD(operand.U8(3), sumi, sumi)
			build.VPADDD(operand.Mem{Base: reg.R14, Disp: cOff + 64*r}, sumi, sumi)
			build.VCVTDQ2PS(sumi, sumi)
			bcst("VMULPS", rec(r, q4kGRecD), reg.Z12, dd, false)
			build.VFMADD231PS(dd, sumi, acc)
			build.VPXORD(mn, mn, mn)
			for p, z := range sums {
				bcst("VPDPWSSD", rec(r, q4kGRecMins+4*p), z, mn, true)
			}
			build.VCVTDQ2PS(mn, mn)
			bcst("VMULPS", rec(r, q4kGRecD+4), reg.Z12, dm, false)
			build.VFNMADD231PS(dm, mn, acc)
		},
	}
}

// Q6_K on tiles: each int8 scale s is 49*d2 + 7*d1 + d0 with balanced
// base-7 digits in [-3, 3], so (level-32)*d_i (at most 96 in magnitude) is
// int8: three tiles of levels times digits give the block's exact
// Σ_j scale_j * ((levels_j-32) . q8_j) as 49*C2 + 7*C1 + C0.
const (
	q6kGRec  = 832 // record: A0[256], A1[256], A2[256], d
	q6kGRecD = 768
)

// amxQ6KGroups is the Q6_K x Q8_K groups kernel. Tiles: 0, 1, 2 C0, C1,
// C2; 3 and 7 the B tiles of alternate chunks; 4, 5, 6 A0, A1, A2.
func amxQ6KGroups() *groupsKernel {
	const fn = "amxQ6KGroups"
	rec := func(r, off int) operand.Mem { return operand.Mem{Base: reg.R14, Disp: r*q6kGRec + off} }
	var sevenths []byte
	for i := 0; i < 16; i++ {
		sevenths = append(sevenths, 0x25, 0x49, 0x12, 0x3e) // float32(1/7) = 0x3e124925
	}
	var permIdx []byte
	for i := 0; i < 32; i++ {
		permIdx = append(permIdx, byte(i/16), 0) // words: sub-block 0 x16, sub-block 1 x16
	}
	return &groupsKernel{
		name: fn,
		doc: groupsDoc(fn, "Q6_K", "Σ_blocks fma(float(sumi), d_r*d_t, ·)",
			"with sumi = Σ_j scale_rj * ((levels_rj-32) . q8_tj) = 49*C2 + 7*C1 + C0 exact in",
			"int32 (AMX TDPBSSD on (levels-32) times the balanced base-7 digits of the",
			"scales); acc starts at 0."),
		wBlock: q6kBytes, rec: q6kGRec, cTiles: 3,
		cfg: fullTiles(fn + "Tiles"),
		setup: func() {
			build.Comment("Constants: nibble mask, 0x30 mask, qh shifts, 32s, 1/7, the digit permutation and its step.")
			build.VMOVDQU64(table("nibbleMask", splat(0x0f, 64)), reg.Z31)
			build.VMOVDQU64(table("mask30", splat(0x30, 64)), reg.Z30)
			build.VMOVDQU64(table("q6kShl", words(4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)), reg.Z29)
			build.VMOVDQU64(table("q6kShr", words(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)), reg.Z28)
			build.VMOVDQU64(table("splat32", splat(32, 64)), reg.Z27)
			build.VMOVDQU64(table("sevenths", sevenths), reg.Z26)
			build.VMOVDQU64(table("q6kDigitIdx", permIdx), reg.Z25)
			build.VMOVDQU64(table("splatW2", words(2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2)), reg.Z24)
		},
		unpack: func() {
			build.Comment("d")
			build.VPBROADCASTW(operand.Mem{Base: reg.RSI, Disp: q6kD}, reg.X19)
			build.VCVTPH2PS(reg.X19, reg.X19)
			build.VMOVSS(reg.X19, operand.Mem{Base: reg.R15, Disp: q6kGRecD})
			build.Comment("Levels - 32 in element order into A0 (overwritten group by group below).")
			for j := 0; j < 2; j++ {
				build.VMOVDQU64(operand.Mem{Base: reg.RSI, Disp: 64 * j}, reg.Z20)
				build.VBROADCASTI64X4(operand.Mem{Base: reg.RSI, Disp: q6kQh + 32*j}, reg.Z21)
				build.VPSLLVW(reg.Z29, reg.Z21, reg.Z22)
				build.VPANDD(reg.Z30, reg.Z22, reg.Z22)
				build.VPTERNLOGD(operand.U8(0xf8), reg.Z31, reg.Z20, reg.Z22)
				build.VPSUBB(reg.Z27, reg.Z22, reg.Z22)
				build.VMOVDQU64(reg.Z22, operand.Mem{Base: reg.R15, Disp: 128 * j})
				build.VPSRLW(operand.U8(4), reg.Z20, reg.Z20)
				build.VPSRLVW(reg.Z28, reg.Z21, reg.Z23)
				build.VPANDD(reg.Z30, reg.Z23, reg.Z23)
				build.VPTERNLOGD(operand.U8(0xf8), reg.Z31, reg.Z20, reg.Z23)
				build.VPSUBB(reg.Z27, reg.Z23, reg.Z23)
				build.VMOVDQU64(reg.Z23, operand.Mem{Base: reg.R15, Disp: 128*j + 64})
			}
			build.Comment("Digits of the 16 scales s: q1 = round(s/7), d0 = s - 7 q1, d2 = round(q1/7), d1 = q1 - 7 d2.")
			build.VPMOVSXBD(operand.Mem{Base: reg.RSI, Disp: q6kScales}, reg.Z16)
			build.VCVTDQ2PS(reg.Z16, reg.Z17)
			build.VMULPS(reg.Z26, reg.Z17, reg.Z17)
			build.VCVTPS2DQ(reg.Z17, reg.Z17)
			build.VPSLLD(operand.U8(3), reg.Z17, reg.Z18)
			build.VPSUBD(reg.Z17, reg.Z18, reg.Z18)
			build.VPSUBD(reg.Z18, reg.Z16, reg.Z16)
			build.VCVTDQ2PS(reg.Z17, reg.Z19)
			build.VMULPS(reg.Z26, reg.Z19, reg.Z19)
			build.VCVTPS2DQ(reg.Z19, reg.Z19)
			build.VPSLLD(operand.U8(3), reg.Z19, reg.Z18)
			build.VPSUBD(reg.Z19, reg.Z18, reg.Z18)
			build.VPSUBD(reg.Z18, reg.Z17, reg.Z17)
			build.Comment("As words: Y16 = d0, Y17 = d1, Y19 = d2 (word j: sub-block j).")
			build.VPMOVDW(reg.Z16, reg.Y16)
			build.VPMOVDW(reg.Z17, reg.Y17)
			build.VPMOVDW(reg.Z19, reg.Y19)
			build.VMOVDQA64(reg.Z25, reg.Z18)
			for g := 0; g < 8; g++ {
				build.Commentf("Elements %d..%d (sub-blocks %d, %d): A_i = (level-32) * d_i.", 32*g, 32*g+31, 2*g, 2*g+1)
				build.VPMOVSXBW(operand.Mem{Base: reg.R15, Disp: 32 * g}, reg.Z20)
				for i, d := range []reg.VecPhysical{reg.Z16, reg.Z17, reg.Z19} {
					build.VPERMW(d, reg.Z18, reg.Z21)
					build.VPMULLW(reg.Z20, reg.Z21, reg.Z21)
					build.VPMOVWB(reg.Z21, operand.Mem{Base: reg.R15, Disp: 256*i + 32*g})
				}
				build.VPADDW(reg.Z24, reg.Z18, reg.Z18)
			}
		},
		tiles: func() {
			TILEZERO(0)
			TILEZERO(1)
			TILEZERO(2)
			for c := 0; c < 4; c++ {
				bt := byte(3)
				if c%2 == 1 {
					bt = 7
				}
				TILELOADD(bt, reg.RBX, reg.RCX, int32(1024*c))
				for i := byte(0); i < 3; i++ {
					TILELOADD(4+i, reg.R14, reg.RDI, int32(256*int(i)+64*c))
					TDPBSSD(i, 4+i, bt)
				}
			}
			for i := 0; i < 3; i++ {
				TILESTORED(byte(i), reg.R14, reg.RCX, int32(16*q6kGRec+1024*i))
			}
		},
		groupSetup: func() {
			build.VMOVUPS(operand.Mem{Base: reg.RBX, Disp: amxPackD}, reg.Z12)
		},
		row: func(r, cOff int, acc reg.VecPhysical, v []reg.VecPhysical) {
			sumi, t, dd := v[0], v[1], v[2]
			build.Comment("sumi = 7*(7*C2 + C1) + C0")
			build.VMOVDQU64(operand.Mem{Base: reg.R14, Disp: cOff + 2048 + 64*r}, sumi)
			build.VPSLLD(operand.U8(3), sumi, t)
			build.VPSUBD(sumi, t, t)
			build.VPADDD(operand.Mem{Base: reg.R14, Disp: cOff + 1024 + 64*r}, t, t)
			build.VPSLLD(operand.U8(3), t, sumi)
			build.VPSUBD(t, sumi, sumi)
			build.VPADDD(operand.Mem{Base: reg.R14, Disp: cOff + 64*r}, sumi, sumi)
			build.VCVTDQ2PS(sumi, sumi)
			bcst("VMULPS", rec(r, q6kGRecD), reg.Z12, dd, false)
			build.VFMADD231PS(dd, sumi, acc)
		},
	}
}
