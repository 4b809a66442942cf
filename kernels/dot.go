package kernels

import (
	"encoding/binary"
	"fmt"

	"github.com/inference-x/inference-x/gguf"
)

// A rows kernel computes a block of dot products between consecutive
// weight rows and several activation rows already quantized to the weight
// format's companion type:
//
//	out[t*ldo+r] = f.Dot(cols, w[r*rowBytes:(r+1)*rowBytes], a[t*lda:t*lda+aRowBytes])
//
// for r < rows and t < nt, nt <= TileTokens. It reads each weight block once
// for all nt activation rows, and its result is bit-identical to the
// format's pure-Go Dot. Kernels take a row range so that one call covers
// many rows (calls into assembly cost a few ns each, never per block).
type rowsKernel func(out []float32, ldo int, w []byte, rows int, a []byte, lda, nt, cols int)

// TileTokens is the largest number of activation rows one kernel call
// takes: a decoded weight block is reused for this many tokens.
const TileTokens = 8

// A variant is one implementation of the rows kernel of one format for one
// instruction set. Every variant the CPU supports is registered (for tests
// and benchmarks); dispatch picks the first enabled one per type.
type variant struct {
	typ    gguf.Type
	isa    string // "avx512", "avx2", ...
	fn     rowsKernel
	one    dotKernel // one dot product of whole blocks (Format.Dot's job)
	enable bool
}

// A dotKernel is Format.Dot for n a positive multiple of the block size,
// w and a holding at least n elements' bytes.
type dotKernel func(n int, w, a []byte) float32

var (
	// variants holds, per type, the variants this CPU can run, best first.
	variants [gguf.TypeCount][]*variant
	// active is the variant dispatch uses per type (nil: pure Go).
	active [gguf.TypeCount]*variant
)

// addVariant registers an implementation; archInit calls it best first.
func addVariant(t gguf.Type, isa string, fn rowsKernel, one dotKernel) {
	variants[t] = append(variants[t], &variant{typ: t, isa: isa, fn: fn, one: one, enable: true})
	selectVariant(t)
	wrapDot(t)
}

// goDot holds, for each type whose Format.Dot dispatches to assembly, the
// pure-Go Dot it replaced.
var goDot [gguf.TypeCount]func(n int, w, a []byte) float32

// wrapDot makes Format.Dot of t run the active variant, so that every
// caller (MatMul's batched paths, the expert backends' row loops) gets the
// assembly, with the same bits. It runs from register and from addVariant,
// whichever comes last (init order follows file names), and once.
func wrapDot(t gguf.Type) {
	f := formats[t]
	if f == nil || f.Dot == nil || len(variants[t]) == 0 || goDot[t] != nil {
		return
	}
	pure := f.Dot
	goDot[t] = pure
	bs := t.BlockSize()
	wb, ab := t.BlockBytes(), f.VecDot.BlockBytes()
	f.Dot = func(n int, w, a []byte) float32 {
		v := active[t]
		nb := n / bs
		if v == nil || nb == 0 {
			return pure(n, w, a)
		}
		if len(w) < nb*wb || len(a) < nb*ab {
			panic(fmt.Sprintf("kernels: %v dot of %d elements on %d weight and %d activation bytes", t, n, len(w), len(a)))
		}
		return v.one(n, w, a)
	}
}

// pureDot returns the pure-Go Format.Dot of t (the reference the
// assembly is tested against).
func pureDot(t gguf.Type) func(n int, w, a []byte) float32 {
	if goDot[t] != nil {
		return goDot[t]
	}
	return formats[t].Dot
}

// selectVariant makes the first enabled variant of t the active one.
func selectVariant(t gguf.Type) {
	active[t] = nil
	for _, v := range variants[t] {
		if v.enable {
			active[t] = v
			return
		}
	}
}

// A fnVariant is an assembly implementation of one of the f32 vector
// functions (VecDotF32, FMAAxpy, the F32 weight dots): available when the
// CPU has its instructions, and switchable like the rows kernels.
type fnVariant struct {
	isa       string
	available bool
	enable    bool
}

// on reports whether the variant runs.
func (v *fnVariant) on() bool { return v.available && v.enable }

// fnVariants lists every fnVariant for setVariantEnabled.
var fnVariants []*fnVariant

func newFnVariant(isa string) *fnVariant {
	v := &fnVariant{isa: isa, enable: true}
	fnVariants = append(fnVariants, v)
	return v
}

// setVariantEnabled switches one instruction set's kernels on or off for
// every type (isa "" means all); tests use it to reach each variant and
// the pure-Go path. It is not safe to call concurrently with kernels.
func setVariantEnabled(isa string, on bool) {
	for _, v := range fnVariants {
		if isa == "" || v.isa == isa {
			v.enable = on
		}
	}
	for t := range variants {
		for _, v := range variants[t] {
			if isa == "" || v.isa == isa {
				v.enable = on
			}
		}
		selectVariant(gguf.Type(t))
		for _, v := range quantVariants[t] {
			if isa == "" || v.isa == isa {
				v.enable = on
			}
		}
		selectQuantizer(gguf.Type(t))
	}
}

// A quantizer is a run-time activation quantizer (Format.QuantizeCPU, or
// Quantize without an importance matrix) producing the same bytes.
type quantizer func(dst []byte, src []float32)

type quantVariant struct {
	typ    gguf.Type
	isa    string
	fn     quantizer
	enable bool
}

var (
	quantVariants [gguf.TypeCount][]*quantVariant
	activeQuant   [gguf.TypeCount]*quantVariant
)

func addQuantizer(t gguf.Type, isa string, fn quantizer) {
	quantVariants[t] = append(quantVariants[t], &quantVariant{typ: t, isa: isa, fn: fn, enable: true})
	selectQuantizer(t)
}

func selectQuantizer(t gguf.Type) {
	activeQuant[t] = nil
	for _, v := range quantVariants[t] {
		if v.enable {
			activeQuant[t] = v
			return
		}
	}
}

// quantizeActivation quantizes one activation row to t with the fastest
// quantizer (the bytes of Format.QuantizeCPU).
func quantizeActivation(f *Format, dst []byte, src []float32) {
	if v := activeQuant[f.Type]; v != nil {
		v.fn(dst, src)
		return
	}
	quantizeCPU(f, dst, src)
}

// Accelerated returns the instruction set the dot products of t run on
// ("avx512", "avx2", ...), or "go" for the pure-Go kernels.
func Accelerated(t gguf.Type) string {
	if t < gguf.TypeCount && active[t] != nil {
		return active[t].isa
	}
	if t == gguf.TypeF32 {
		return f32ISA()
	}
	return "go"
}

// genericRows is the rows kernel of the pure-Go Format.Dot.
func genericRows(f *Format, out []float32, ldo int, w []byte, rows int, a []byte, lda, nt, cols int) {
	rb := len(w) / max(rows, 1)
	arb, _ := f.VecDot.RowBytes(cols)
	for r := 0; r < rows; r++ {
		row := w[r*rb : (r+1)*rb]
		for t := 0; t < nt; t++ {
			out[t*ldo+r] = f.Dot(cols, row, a[t*lda:t*lda+arb])
		}
	}
}

// DotRows computes out[t*ldo+(r-lo)] = Dot(row r of m, activation row t)
// for lo <= r < hi and t < nt, where activation row t is a[t*lda:] quantized
// to m's companion type (Format.VecDot). It uses the fastest kernel of this
// CPU and gives the same bits as Format.Dot. It panics on sizes that do not
// fit; it does not allocate.
func (m *Matrix) DotRows(out []float32, ldo, lo, hi int, a []byte, lda, nt int) {
	f := m.format
	if f.Dot == nil {
		panic(fmt.Sprintf("kernels: %v has no quantized dot product", m.Type))
	}
	arb, _ := f.VecDot.RowBytes(m.Cols)
	if lo < 0 || hi > m.Rows || lo > hi || nt < 0 || lda < arb ||
		(nt > 0 && (len(a) < (nt-1)*lda+arb || len(out) < (nt-1)*ldo+hi-lo || ldo < hi-lo)) {
		panic(fmt.Sprintf("kernels: DotRows rows [%d,%d) of %d, %d activation rows of %d bytes (stride %d, %d bytes), out %d (stride %d)",
			lo, hi, m.Rows, nt, arb, lda, len(a), len(out), ldo))
	}
	if lo == hi || nt == 0 {
		return
	}
	m.dotRows(out, ldo, lo, hi, a, lda, nt)
}

// dotRows is DotRows without the checks, in tiles of TileTokens.
func (m *Matrix) dotRows(out []float32, ldo, lo, hi int, a []byte, lda, nt int) {
	w := m.Data[lo*m.RowBytes : hi*m.RowBytes]
	v := active[m.Type]
	for t0 := 0; t0 < nt; t0 += TileTokens {
		n := min(TileTokens, nt-t0)
		if v != nil {
			v.fn(out[t0*ldo:], ldo, w, hi-lo, a[t0*lda:], lda, n, m.Cols)
		} else {
			genericRows(m.format, out[t0*ldo:], ldo, w, hi-lo, a[t0*lda:], lda, n, m.Cols)
		}
	}
}

// readBytesGo is readBytes in Go: the memory-bandwidth reference of the
// benchmarks where there is no assembly.
func readBytesGo(p []byte) uint64 {
	var x uint64
	for i := 0; i+8 <= len(p); i += 8 {
		x ^= binary.LittleEndian.Uint64(p[i:])
	}
	return x
}
