package main

import (
	"github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	"github.com/mmcloughlin/avo/operand"
)

// avo v0.5.0 has no AVX512-VNNI instructions in its table; the Go
// assembler has them. These helpers emit them with avo's operand order
// (sources first, destination last) and tell avo which operands are read
// and written.

// VPDPWSSD: dst[i] += src1[2i]*src2[2i] + src1[2i+1]*src2[2i+1] (signed
// words to dwords). src2 may be memory.
func VPDPWSSD(src2, src1, dst operand.Op) {
	build.Instruction(&ir.Instruction{
		Opcode:   "VPDPWSSD",
		Operands: []operand.Op{src2, src1, dst},
		Inputs:   []operand.Op{src2, src1, dst},
		Outputs:  []operand.Op{dst},
		ISA:      []string{"AVX512VNNI"},
	})
}

// VPDPBUSD: dst[i] += Σ_{k<4} uint8(src1[4i+k]) * int8(src2[4i+k]).
// src2 may be memory.
func VPDPBUSD(src2, src1, dst operand.Op) {
	build.Instruction(&ir.Instruction{
		Opcode:   "VPDPBUSD",
		Operands: []operand.Op{src2, src1, dst},
		Inputs:   []operand.Op{src2, src1, dst},
		Outputs:  []operand.Op{dst},
		ISA:      []string{"AVX512VNNI"},
	})
}

// VGF2P8AFFINEQB: every byte x of src becomes A·x + imm over GF(2), with A
// the 8x8 bit matrix of the matching qword of mat (bit i of the result is
// the parity of mat.byte[7-i] & x, xor imm bit i). mat may be memory.
func VGF2P8AFFINEQB(imm, mat, src, dst operand.Op) {
	build.Instruction(&ir.Instruction{
		Opcode:   "VGF2P8AFFINEQB",
		Operands: []operand.Op{imm, mat, src, dst},
		Inputs:   []operand.Op{mat, src},
		Outputs:  []operand.Op{dst},
		ISA:      []string{"GFNI", "AVX512F"},
	})
}
