package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// consts remembers the read-only tables already emitted, by name.
var consts = map[string]Mem{}

// table emits a read-only byte table once and returns its address.
func table(name string, b []byte) Mem {
	if m, ok := consts[name]; ok {
		return m
	}
	m := GLOBL(name, RODATA|NOPTR)
	for i, v := range b {
		DATA(i, U8(v))
	}
	consts[name] = m
	return m
}

// splat repeats the byte v n times.
func splat(v byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

// words returns the little-endian bytes of 16-bit values.
func words(v ...uint16) []byte {
	var b []byte
	for _, w := range v {
		b = append(b, byte(w), byte(w>>8))
	}
	return b
}

// u64 is a 64-bit table entry: eight copies of byte v.
func u64of(v byte) []byte { return splat(v, 8) }

// lbl makes a label unique to the current function.
func lbl(fn, name string) string { return fmt.Sprintf("%s_%s", fn, name) }

// tailMask sets K1 to the low CL bits (1<<CL - 1): the lanes of a tail of
// CL < 16 values. It clobbers AX.
func tailMask() {
	MOVL(U32(1), EAX)
	SHLL(CL, EAX)
	DECL(EAX)
	KMOVW(EAX, K1)
}
