package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// laneModels are the Go models of ggml's SIMD dot products that the
// assembly reproduces bit for bit.
var laneModels = map[gguf.Type]func(n int, w, a []byte) float32{
	gguf.TypeQ4_K: laneDotQ4K,
	gguf.TypeQ6_K: laneDotQ6K,
	gguf.TypeQ8_0: laneDotQ8_0,
	gguf.TypeQ4_0: laneDotQ4_0,
	gguf.TypeQ5_0: laneDotQ5_0,
	gguf.TypeQ4_1: laneDotQ4_1,
}

// unitScaleOffsets are the byte offsets of each format's fp16 block scales.
var unitScaleOffsets = map[gguf.Type][]int{
	gguf.TypeQ4_K: {0, 2},
	gguf.TypeQ6_K: {208},
	gguf.TypeQ8_0: {0},
	gguf.TypeQ4_0: {0},
	gguf.TypeQ5_0: {0},
	gguf.TypeQ4_1: {0, 2},
}

// smallScales sets a block's sub-block scales to small values so that
// integer dots stay below 2^24 (exact in float32 in any order).
var smallScales = map[gguf.Type]func(rng *rand.Rand, x []byte){
	gguf.TypeQ4_K: func(rng *rand.Rand, x []byte) {
		for i := 4; i < 16; i++ {
			x[i] = byte(rng.IntN(256)) & 0x11 // 6-bit scales and mins of 0, 1, 16, 17
		}
	},
	gguf.TypeQ6_K: func(rng *rand.Rand, x []byte) {
		for i := 192; i < 208; i++ {
			x[i] = byte(rng.IntN(5) - 2)
		}
	},
}

// allVariants returns every registered variant, and a restore function
// that re-enables them all.
func allVariants(t testing.TB) []*variant {
	var vs []*variant
	for _, tv := range variants {
		vs = append(vs, tv...)
	}
	if len(vs) == 0 {
		t.Skip("no assembly kernels in this build (purego or a CPU without AVX2)")
	}
	return vs
}

// runVariant calls v's kernel alone (no dispatch).
func runVariant(v *variant, out []float32, ldo int, w []byte, rows int, a []byte, lda, nt, cols int) {
	v.fn(out, ldo, w, rows, a, lda, nt, cols)
}

func sameFloat(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// TestDotRowsVectors runs every variant on ggml's test vectors: its result
// must equal ggml's SIMD vec_dot (dot_simd, fed act_q_simd) and the
// pure-Go Format.Dot bit for bit.
func TestDotRowsVectors(t *testing.T) {
	vs := allVariants(t)
	files := loadVectors(t)
	for _, v := range vs {
		for _, vf := range files {
			if gguf.Type(vf.TypeID) != v.typ {
				continue
			}
			for _, c := range vf.Cases {
				if c.Act == nil {
					continue
				}
				t.Run(fmt.Sprintf("%v/%s/%s", v.typ, v.isa, c.Name), func(t *testing.T) {
					out := make([]float32, c.Rows)
					runVariant(v, out, c.Rows, c.Quant, c.Rows, c.ActSIMD, c.ActRowSize, 1, c.PerRow)
					for r := 0; r < c.Rows; r++ {
						if !sameFloat(out[r], c.DotSIMD[r]) {
							t.Errorf("row %d: %g (%#08x), ggml SIMD %g (%#08x)", r, out[r], math.Float32bits(out[r]),
								c.DotSIMD[r], math.Float32bits(c.DotSIMD[r]))
						}
						if g := pureDot(v.typ)(c.PerRow, c.Quant[r*c.RowSize:(r+1)*c.RowSize], c.ActSIMD); !sameFloat(out[r], g) {
							t.Errorf("row %d: %g (%#08x), pure-Go Dot %g (%#08x)", r, out[r], math.Float32bits(out[r]),
								g, math.Float32bits(g))
						}
					}
				})
			}
		}
	}
}

// randomBlocks returns rows of nb random blocks of t, with every fp16
// scale set to one and the Q8_K activation scales to one, so that every
// dot is an integer small enough for float32: then any summation order
// gives the same float and the assembly must equal Format.Dot exactly.
// extreme makes the activation bytes -128/127 and weight bytes 0x00/0xFF.
func integerRows(rng *rand.Rand, t gguf.Type, rows, nt, nb int, extreme bool) (w, a []byte) {
	f, _ := Lookup(t)
	bb := t.BlockBytes()
	ab := f.VecDot.BlockBytes()
	w = make([]byte, rows*nb*bb)
	a = make([]byte, nt*nb*ab)
	pick := func() byte {
		if extreme {
			return []byte{0x00, 0xFF, 0x80, 0x7F}[rng.IntN(4)]
		}
		return byte(rng.IntN(256))
	}
	for i := range w {
		w[i] = pick()
	}
	for i := range a {
		a[i] = pick()
	}
	for b := 0; b < rows*nb; b++ {
		x := w[b*bb : (b+1)*bb]
		for _, off := range unitScaleOffsets[t] {
			x[off], x[off+1] = 0x00, 0x3c // fp16 1.0
		}
		if shrink := smallScales[t]; shrink != nil {
			shrink(rng, x)
		}
	}
	if f.VecDot == gguf.TypeQ8_0 || f.VecDot == gguf.TypeQ8_1 {
		for b := 0; b < nt*nb; b++ {
			a[b*ab], a[b*ab+1] = 0x00, 0x3c // d = 1
			if f.VecDot == gguf.TypeQ8_1 {
				a[b*ab+2], a[b*ab+3] = 0x00, 0x3c // s = 1
			}
		}
	}
	if f.VecDot == gguf.TypeQ8_K {
		for b := 0; b < nt*nb; b++ {
			y := a[b*ab : (b+1)*ab]
			copy(y, []byte{0, 0, 0x80, 0x3f}) // d = 1
			for j := 0; j < 16; j++ {
				var s int16
				for _, q := range y[4+16*j : 4+16*j+16] {
					s += int16(int8(q))
				}
				y[260+2*j], y[261+2*j] = byte(s), byte(uint16(s)>>8)
			}
		}
	}
	return w, a
}

// TestDotRowsInteger checks every variant against Format.Dot exactly on
// integer-valued dots (unit scales), including extreme bytes, and against
// the lane model on tiles of every width with strided outputs.
func TestDotRowsInteger(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for _, v := range allVariants(t) {
		f, _ := Lookup(v.typ)
		model := laneModels[v.typ]
		t.Run(v.typ.String()+"/"+v.isa, func(t *testing.T) {
			for _, extreme := range []bool{false, true} {
				for _, nb := range []int{1, 2, 3, 7} {
					cols := nb * v.typ.BlockSize()
					rows := 1 + rng.IntN(5)
					nt := 1 + rng.IntN(TileTokens)
					w, a := integerRows(rng, v.typ, rows, nt, nb, extreme)
					rb, _ := v.typ.RowBytes(cols)
					ab, _ := f.VecDot.RowBytes(cols)
					ldo := rows + 3
					out := make([]float32, nt*ldo)
					for i := range out {
						out[i] = -1
					}
					runVariant(v, out, ldo, w, rows, a, ab, nt, cols)
					for tk := 0; tk < nt; tk++ {
						for r := 0; r < rows; r++ {
							got := out[tk*ldo+r]
							row, act := w[r*rb:(r+1)*rb], a[tk*ab:(tk+1)*ab]
							want := pureDot(v.typ)(cols, row, act)
							if !sameFloat(got, want) {
								t.Errorf("extreme=%v nb=%d row %d token %d: %g, pure Go %g", extreme, nb, r, tk, got, want)
							}
							if model != nil && !sameFloat(got, model(cols, row, act)) {
								t.Errorf("extreme=%v nb=%d row %d token %d: %g, lane model %g", extreme, nb, r, tk, got, model(cols, row, act))
							}
						}
						for r := rows; r < ldo; r++ {
							if out[tk*ldo+r] != -1 {
								t.Fatalf("wrote outside the tile at token %d column %d", tk, r)
							}
						}
					}
				}
			}
		})
	}
}

// TestDotRowsRandom compares every variant with its lane model and with
// the pure-Go Format.Dot, bit for bit, on random bytes (NaN and Inf
// scales included) and on quantized real data.
func TestDotRowsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, v := range allVariants(t) {
		model := laneModels[v.typ]
		if model == nil {
			continue
		}
		f, _ := Lookup(v.typ)
		t.Run(v.typ.String()+"/"+v.isa, func(t *testing.T) {
			for iter := 0; iter < 200; iter++ {
				nb := 1 + rng.IntN(6)
				cols := nb * v.typ.BlockSize()
				rb, _ := v.typ.RowBytes(cols)
				ab, _ := f.VecDot.RowBytes(cols)
				rows, nt := 1+rng.IntN(4), 1+rng.IntN(TileTokens)
				w := make([]byte, rows*rb)
				a := make([]byte, nt*ab)
				if iter%2 == 0 {
					for i := range w {
						w[i] = byte(rng.IntN(256))
					}
					for i := range a {
						a[i] = byte(rng.IntN(256))
					}
				} else {
					x := make([]float32, cols)
					for r := 0; r < rows; r++ {
						for i := range x {
							x[i] = float32(rng.NormFloat64())
						}
						f.Quantize(w[r*rb:(r+1)*rb], x, nil)
					}
					for tk := 0; tk < nt; tk++ {
						for i := range x {
							x[i] = float32(rng.NormFloat64() * 3)
						}
						if err := QuantizeActivation(f.VecDot, a[tk*ab:(tk+1)*ab], x); err != nil {
							t.Fatal(err)
						}
					}
				}
				out := make([]float32, nt*rows)
				runVariant(v, out, rows, w, rows, a, ab, nt, cols)
				for tk := 0; tk < nt; tk++ {
					for r := 0; r < rows; r++ {
						row, act := w[r*rb:(r+1)*rb], a[tk*ab:(tk+1)*ab]
						got := out[tk*rows+r]
						if want := model(cols, row, act); !sameFloat(got, want) {
							t.Fatalf("iter %d row %d token %d: %g (%#08x), lane model %g (%#08x)", iter, r, tk,
								got, math.Float32bits(got), want, math.Float32bits(want))
						}
						if want := pureDot(v.typ)(cols, row, act); !sameFloat(got, want) {
							t.Fatalf("iter %d row %d token %d: %g (%#08x), pure-Go Dot %g (%#08x)", iter, r, tk,
								got, math.Float32bits(got), want, math.Float32bits(want))
						}
					}
				}
			}
		})
	}
}

// TestDispatchSwitch runs MatMul with each instruction set switched off in
// turn: every assembly path and the pure-Go path (everything off) give
// the same bits.
func TestDispatchSwitch(t *testing.T) {
	allVariants(t)
	defer setVariantEnabled("", true)
	rng := rand.New(rand.NewPCG(11, 12))
	p := NewPool(2)
	defer p.Close()
	for ti := range variants {
		typ := gguf.Type(ti)
		if len(variants[ti]) == 0 {
			continue
		}
		f, _ := Lookup(typ)
		const rows, cols, n = 37, 512, 11
		w := make([]byte, rows*mustRowBytes(typ, cols))
		x := make([]float32, n*cols)
		src := make([]float32, cols)
		rb := mustRowBytes(typ, cols)
		for r := 0; r < rows; r++ {
			for i := range src {
				src[i] = float32(rng.NormFloat64())
			}
			f.Quantize(w[r*rb:(r+1)*rb], src, nil)
		}
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		m, err := NewMatrix(typ, rows, cols, w)
		if err != nil {
			t.Fatal(err)
		}
		run := func() []float32 {
			tilesVariant.enable = false // tiles round differently; TestTileMatMul covers them
			var acts Activations
			acts.Reset(x, n, cols)
			out := make([]float32, n*rows)
			p.MatMul(out, &m, &acts)
			return out
		}
		setVariantEnabled("", true)
		best := Accelerated(typ)
		ref := run()
		for _, isa := range []string{"avx512", "avx2"} {
			setVariantEnabled("", true)
			setVariantEnabled(isa, false)
			got := run()
			if Accelerated(typ) == "go" {
				continue
			}
			for i := range got {
				if !sameFloat(got[i], ref[i]) {
					t.Fatalf("%v: %s off (%s) differs from %s at %d: %g vs %g", typ, isa, Accelerated(typ), best, i, got[i], ref[i])
				}
			}
		}
		setVariantEnabled("", false)
		if Accelerated(typ) != "go" {
			t.Fatalf("%v: still %s with every variant off", typ, Accelerated(typ))
		}
		got := run()
		for i := range got {
			if !sameFloat(got[i], ref[i]) {
				t.Fatalf("%v: pure Go %g (%#08x), assembly %g (%#08x) at %d", typ, got[i], math.Float32bits(got[i]),
					ref[i], math.Float32bits(ref[i]), i)
			}
		}
	}
}

func mustRowBytes(t gguf.Type, n int) int {
	b, err := t.RowBytes(n)
	if err != nil {
		panic(err)
	}
	return b
}

// TestFormatDotDispatch checks that Format.Dot of a type with assembly
// runs each variant in turn with the pure-Go bits, and allocates nothing.
func TestFormatDotDispatch(t *testing.T) {
	allVariants(t)
	defer setVariantEnabled("", true)
	rng := rand.New(rand.NewPCG(21, 22))
	for ti := range variants {
		typ := gguf.Type(ti)
		if len(variants[ti]) == 0 {
			continue
		}
		f, _ := Lookup(typ)
		for _, nb := range []int{1, 3, 16} {
			cols := nb * typ.BlockSize()
			w := make([]byte, mustRowBytes(typ, cols))
			a := make([]byte, mustRowBytes(f.VecDot, cols))
			x := make([]float32, cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			f.Quantize(w, x, nil)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			if err := QuantizeActivation(f.VecDot, a, x); err != nil {
				t.Fatal(err)
			}
			want := pureDot(typ)(cols, w, a)
			for _, v := range variants[ti] {
				setVariantEnabled("", false)
				setVariantEnabled(v.isa, true)
				if Accelerated(typ) != v.isa {
					t.Fatalf("%v: %s enabled alone, dispatch runs %s", typ, v.isa, Accelerated(typ))
				}
				if got := f.Dot(cols, w, a); !sameFloat(got, want) {
					t.Fatalf("%v/%s nb %d: Dot %g (%#08x), pure Go %g (%#08x)", typ, v.isa, nb, got,
						math.Float32bits(got), want, math.Float32bits(want))
				}
				if n := testing.AllocsPerRun(10, func() { f.Dot(cols, w, a) }); n != 0 {
					t.Fatalf("%v/%s: Dot allocates %v times", typ, v.isa, n)
				}
			}
			setVariantEnabled("", false)
			if got := f.Dot(cols, w, a); !sameFloat(got, want) {
				t.Fatalf("%v: Dot with every variant off %g, pure Go %g", typ, got, want)
			}
			setVariantEnabled("", true)
		}
	}
}

// TestDotRowsOneToken covers the one-token streams of the rows kernels
// (rows split into two or four interleaved streams, the remainder row by
// row): every row count from 1 to 13, checked against Format.Dot bit for
// bit with a strided output.
func TestDotRowsOneToken(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, v := range allVariants(t) {
		f, _ := Lookup(v.typ)
		t.Run(v.typ.String()+"/"+v.isa, func(t *testing.T) {
			nb := 3
			cols := nb * v.typ.BlockSize()
			rb, ab := mustRowBytes(v.typ, cols), mustRowBytes(f.VecDot, cols)
			for rows := 1; rows <= 13; rows++ {
				w, a := integerRows(rng, v.typ, rows, 1, nb, rows%3 == 0)
				out := make([]float32, rows+1)
				out[rows] = -1
				runVariant(v, out, rows, w, rows, a, ab, 1, cols)
				for r := 0; r < rows; r++ {
					if want := pureDot(v.typ)(cols, w[r*rb:(r+1)*rb], a); !sameFloat(out[r], want) {
						t.Fatalf("%d rows: row %d = %g, pure Go %g", rows, r, out[r], want)
					}
				}
				if out[rows] != -1 {
					t.Fatalf("%d rows: wrote past the rows", rows)
				}
			}
		})
	}
}

// TestReadBytes checks the read-bandwidth reference's checksum against
// the Go one for lengths with and without a single-stream tail.
func TestReadBytes(t *testing.T) {
	p := make([]byte, 1<<16)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	for _, n := range []int{0, 256, 768, 1024, 1280, 4096 + 768, 1 << 16} {
		if got, want := readBytes(p[:n]), readBytesGo(p[:n]); got != want {
			t.Fatalf("%d bytes: %#x, Go %#x", n, got, want)
		}
	}
}
