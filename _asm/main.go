// Command _asm generates the amd64 assembly of package kernels with avo:
//
//	cd _asm && go run . -out ../kernels/dot_amd64.s
//
// Each kernel implements a Go stub declared in kernels/dot_amd64.go; the
// stub's doc comment is the loop it computes. `make generate` runs this and
// `make verify-asm` fails when the committed file differs from a fresh run.
package main

import (
	. "github.com/mmcloughlin/avo/build"
)

func main() {
	Package("github.com/inference-x/inference-x/kernels")
	ConstraintExpr("amd64,!purego")
	genPause()
	genReadBW()
	genQuantQ8K()
	genQuantQ8_0()
	genVecDotF32()
	genDotF32Lanes16()
	genFMAAxpy()
	genDotF16Lanes("dotF16Lanes16AVX512", 1)
	genDotF16Lanes("dotF16Lanes64AVX512", 4)
	genAxpyF16()
	genDotF16Lanes16Rows()
	genAxpyF16Rows()
	genF16Convert()
	genKQVSum()
	genExpBlock()
	genSwiglu()
	amxQ4KGroups().gen()
	amxQ6KGroups().gen()
	q4kAVX512().gen()
	q6kAVX512().gen()
	q4kBlockAVX512().gen()
	q6kBlockAVX512().gen()
	q8_0AVX512().gen()
	q4_0AVX512().gen()
	q5_0AVX512().gen()
	q4_1AVX512().gen()
	q4kAVX2().gen()
	q6kAVX2().gen()
	q8_0AVX2().gen()
	q4_0AVX2().gen()
	q5_0AVX2().gen()
	q4_1AVX2().gen()
	Generate()
}
