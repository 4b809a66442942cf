package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// f32Values are awkward float32 inputs: signed zeros, subnormals,
// infinities, NaN, values whose products overflow or round to midpoints.
var f32Values = []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.5, 3, math.MaxFloat32, -math.MaxFloat32,
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-38, float32(math.Inf(1)), float32(math.Inf(-1)),
	float32(math.NaN()), 1 + 1.0/(1<<23), 1 << 12, 1.0 / (1 << 12), 16777217}

// f32Rows returns two rows of n values: normal draws, or (awkward) draws
// mixed with f32Values.
func f32Rows(rng *rand.Rand, n int, awkward bool) (x, y []float32) {
	x, y = make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		y[i] = float32(rng.NormFloat64() * 4)
		if awkward && rng.IntN(4) == 0 {
			x[i] = f32Values[rng.IntN(len(f32Values))]
		}
		if awkward && rng.IntN(4) == 0 {
			y[i] = f32Values[rng.IntN(len(f32Values))]
		}
	}
	return x, y
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// checkF32Dots compares the dispatched f32 functions with the pure-Go ones
// on one pair of rows.
func checkF32Dots(t *testing.T, x, y []float32, p float32) {
	t.Helper()
	n := len(x)
	if got, want := VecDotF32(x, y), vecDotF32Go(x, y); !sameFloat(got, want) {
		t.Fatalf("VecDotF32 n=%d: %g (%#08x), pure Go %g (%#08x)", n, got, math.Float32bits(got), want, math.Float32bits(want))
	}
	w := f32Bytes(x)
	if got, want := dotF32W(w, y), dotF32WGo(w, y); !sameFloat(got, want) {
		t.Fatalf("dotF32W n=%d: %g, pure Go %g", n, got, want)
	}
	if got, want := dotF32WBatch(w, y), dotF32WBatchGo(w, y); !sameFloat(got, want) {
		t.Fatalf("dotF32WBatch n=%d: %g, pure Go %g", n, got, want)
	}
	a1, a2 := append([]float32(nil), y...), append([]float32(nil), y...)
	FMAAxpy(a1, x, p)
	fmaAxpyGo(a2, x, p)
	for i := range a1 {
		if !sameFloat(a1[i], a2[i]) {
			t.Fatalf("FMAAxpy n=%d p=%g: [%d] %g, pure Go %g", n, p, i, a1[i], a2[i])
		}
	}
}

// TestF32AsmExact runs the assembly f32 functions on every length up to
// 300 and on awkward values: the same bits as the pure-Go ones.
func TestF32AsmExact(t *testing.T) {
	if f32ISA() == "go" {
		t.Skip("no assembly f32 functions in this build")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for n := 0; n <= 300; n++ {
		for _, awkward := range []bool{false, true} {
			x, y := f32Rows(rng, n, awkward)
			checkF32Dots(t, x, y, float32(rng.NormFloat64()))
			checkF32Dots(t, x, y, f32Values[rng.IntN(len(f32Values))])
		}
	}
	for _, n := range []int{4096, 11008} {
		x, y := f32Rows(rng, n, false)
		checkF32Dots(t, x, y, 0.25)
	}
	x, y := f32Rows(rng, 128, false)
	if a := testing.AllocsPerRun(10, func() { VecDotF32(x, y); FMAAxpy(y, x, 1) }); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

// FuzzF32Dots compares the assembly f32 and F16-lane functions with the
// pure-Go ones on arbitrary bit patterns.
func FuzzF32Dots(f *testing.F) {
	f.Add(uint16(128), []byte{0x00, 0x00, 0x80, 0x7f}, []byte{0x01, 0x00, 0x00, 0x00}, uint32(0x3f800000))
	f.Add(uint16(77), []byte{0xff, 0xff, 0x7f, 0x7f}, []byte{0x00, 0x00, 0x00, 0x80}, uint32(0xbf000000))
	f.Fuzz(func(t *testing.T, n uint16, xs, ys []byte, p uint32) {
		n %= 1024
		x, y := make([]float32, n), make([]float32, n)
		xb, yb := fill(make([]byte, 4*int(n)), xs), fill(make([]byte, 4*int(n)), ys)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(xb[4*i:]))
			y[i] = math.Float32frombits(binary.LittleEndian.Uint32(yb[4*i:]))
		}
		checkF32Dots(t, x, y, math.Float32frombits(p))
		k := make([]uint16, n)
		for i := range k {
			k[i] = binary.LittleEndian.Uint16(yb[4*i:])
		}
		checkF16Lanes(t, x, k, math.Float32frombits(p))
	})
}

// f16Row returns n F16 values: conversions of normal draws, or (awkward)
// mixed with arbitrary bit patterns (subnormals, Inf, NaN).
func f16Row(rng *rand.Rand, n int, awkward bool) []uint16 {
	k := make([]uint16, n)
	for i := range k {
		k[i] = F32ToFP16(float32(rng.NormFloat64()))
		if awkward && rng.IntN(4) == 0 {
			k[i] = uint16(rng.Uint32())
		}
	}
	return k
}

// checkF16Lanes compares the dispatched F16 attention functions with the
// pure-Go ones.
func checkF16Lanes(t *testing.T, q []float32, k []uint16, p float32) {
	t.Helper()
	n := len(q)
	if got, want := DotF16Lanes16(q, k), dotF16Lanes16Go(q, k); !sameFloat(got, want) {
		t.Fatalf("DotF16Lanes16 n=%d: %g (%#08x), pure Go %g (%#08x)", n, got, math.Float32bits(got), want, math.Float32bits(want))
	}
	if got, want := DotF16Lanes64(q, k), dotF16Lanes64Go(q, k); !sameFloat(got, want) {
		t.Fatalf("DotF16Lanes64 n=%d: %g (%#08x), pure Go %g (%#08x)", n, got, math.Float32bits(got), want, math.Float32bits(want))
	}
	a1, a2 := append([]float32(nil), q...), append([]float32(nil), q...)
	AxpyF16(a1, k, p)
	axpyF16Go(a2, k, p)
	for i := range a1 {
		if !sameFloat(a1[i], a2[i]) {
			t.Fatalf("AxpyF16 n=%d p=%g: [%d] %g, pure Go %g", n, p, i, a1[i], a2[i])
		}
	}
}

// TestF16LanesAsmExact runs the F16 attention functions on every length up
// to 300 and on awkward values: the same bits as the pure-Go ones.
func TestF16LanesAsmExact(t *testing.T) {
	if f32ISA() == "go" {
		t.Skip("no assembly f32 functions in this build")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for n := 0; n <= 300; n++ {
		for _, awkward := range []bool{false, true} {
			q, _ := f32Rows(rng, n, awkward)
			checkF16Lanes(t, q, f16Row(rng, n, awkward), float32(rng.NormFloat64()))
			checkF16Lanes(t, q, f16Row(rng, n, awkward), f32Values[rng.IntN(len(f32Values))])
		}
	}
	q, _ := f32Rows(rng, 128, false)
	k := f16Row(rng, 128, false)
	if a := testing.AllocsPerRun(10, func() { DotF16Lanes16(q, k); DotF16Lanes64(q, k); AxpyF16(q, k, 1) }); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

// TestLaneSumExpBlockAsmExact compares LaneSum and ExpBlock16 with their
// pure-Go versions on random and awkward values.
func TestLaneSumExpBlockAsmExact(t *testing.T) {
	if f32ISA() == "go" {
		t.Skip("no assembly f32 functions in this build")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, vd := range []int{1, 15, 16, 17, 64, 128, 130, 512} {
		for _, width := range []int{16, 64} {
			for _, awkward := range []bool{false, true} {
				acc, _ := f32Rows(rng, width*vd, awkward)
				for _, n := range []int{vd, vd / 2, vd &^ 15} {
					got, want := make([]float32, n), make([]float32, n)
					LaneSum(got, acc, vd, width)
					laneSumGo(want, acc, vd, width)
					for d := range got {
						if !sameFloat(got[d], want[d]) {
							t.Fatalf("LaneSum vd %d width %d n %d: [%d] %g, pure Go %g", vd, width, n, d, got[d], want[d])
						}
					}
				}
			}
		}
	}
	for iter := 0; iter < 20000; iter++ {
		m := 1 + rng.IntN(16)
		s := make([]float32, m)
		for j := range s {
			switch rng.IntN(6) {
			case 0:
				s[j] = f32Values[rng.IntN(len(f32Values))]
			case 1:
				s[j] = float32(rng.NormFloat64() * 100)
			default:
				s[j] = float32(rng.NormFloat64() * 5)
			}
		}
		mx := float32(rng.NormFloat64() * 5)
		if iter%3 == 0 {
			mx = s[0]
		}
		a, b := append([]float32(nil), s...), append([]float32(nil), s...)
		got, want := ExpBlock16(a, mx), expBlock16Go(b, mx)
		if !sameFloat(got, want) {
			t.Fatalf("ExpBlock16(%v, %g) sum %g, pure Go %g", s, mx, got, want)
		}
		for j := range a {
			if !sameFloat(a[j], b[j]) {
				t.Fatalf("ExpBlock16: exp(%g - %g) = %g (%#08x), pure Go %g (%#08x)", s[j], mx, a[j],
					math.Float32bits(a[j]), b[j], math.Float32bits(b[j]))
			}
		}
	}
	// Every exponent the softmax meets: x from -200 to 100 in small steps.
	for x := float32(-200); x < 100; x += 0.0137 {
		a, b := []float32{x}, []float32{x}
		ExpBlock16(a, 0)
		expBlock16Go(b, 0)
		if !sameFloat(a[0], b[0]) {
			t.Fatalf("exp(%g) = %g (%#08x), pure Go %g (%#08x)", x, a[0], math.Float32bits(a[0]), b[0], math.Float32bits(b[0]))
		}
	}
}

// TestSwigluAsmExact compares SwigluBlocks with its pure-Go version.
func TestSwigluAsmExact(t *testing.T) {
	if f32ISA() == "go" {
		t.Skip("no assembly f32 functions in this build")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for n := 0; n <= 200; n++ {
		for _, awkward := range []bool{false, true} {
			g, u := f32Rows(rng, n, awkward)
			for i := range g {
				if rng.IntN(5) == 0 {
					g[i] *= 40
				}
			}
			a, b := append([]float32(nil), g...), append([]float32(nil), g...)
			if k := SwigluBlocks(a, u); k != n&^15 {
				t.Fatalf("n %d: %d values done", n, k)
			}
			swigluGo(b, u)
			for i := range a {
				if !sameFloat(a[i], b[i]) {
					t.Fatalf("swiglu(%g, %g) = %g (%#08x), pure Go %g (%#08x)", g[i], u[i], a[i],
						math.Float32bits(a[i]), b[i], math.Float32bits(b[i]))
				}
			}
		}
	}
	for x := float32(-120); x < 120; x += 0.0071 {
		g, u := make([]float32, 16), make([]float32, 16)
		for i := range g {
			g[i], u[i] = x+float32(i)*1e-3, 1
		}
		a, b := append([]float32(nil), g...), append([]float32(nil), g...)
		SwigluBlocks(a, u)
		swigluGo(b, u)
		for i := range a {
			if !sameFloat(a[i], b[i]) {
				t.Fatalf("silu(%g) = %g, pure Go %g", g[i], a[i], b[i])
			}
		}
	}
}

// TestF16RowsKernels checks the many-row attention products against the
// one-row functions bit for bit: every row count from 0 to 9 (the
// assembly takes four at a time), strided keys and values, 16 and 64
// lanes.
func TestF16RowsKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	f16 := func(n int) []uint16 {
		v := make([]uint16, n)
		for i := range v {
			v[i] = F32ToFP16(float32(rng.NormFloat64()))
		}
		return v
	}
	for _, n := range []int{16, 80, 128} {
		for rows := 0; rows <= 9; rows++ {
			stride := n + 48
			q := make([]float32, n)
			for i := range q {
				q[i] = FP16ToF32(F32ToFP16(float32(rng.NormFloat64())))
			}
			k := f16(rows*stride + n)
			got := make([]float32, rows)
			DotF16Lanes16Rows(got, q, k, stride)
			for j := range got {
				if want := DotF16Lanes16(q, k[j*stride:]); !sameFloat(got[j], want) {
					t.Fatalf("n=%d rows=%d: score %d = %g, one row %g", n, rows, j, got[j], want)
				}
			}
			for _, width := range []int{16, 64} {
				p := make([]float32, rows+width)
				for i := range p {
					p[i] = FP16ToF32(F32ToFP16(rng.Float32()))
				}
				v := f16(len(p)*stride + n)
				acc := make([]float32, width*n)
				want := make([]float32, width*n)
				AxpyF16Rows(acc, n, width, v, stride, p)
				for j := range p {
					l := j & (width - 1)
					AxpyF16(want[l*n:(l+1)*n], v[j*stride:], p[j])
				}
				for i := range acc {
					if !sameFloat(acc[i], want[i]) {
						t.Fatalf("n=%d rows=%d width=%d: acc[%d] = %g, one row at a time %g", n, len(p), width, i, acc[i], want[i])
					}
				}
			}
		}
	}
}

// TestF16Convert checks ToF16 and RoundF16 against the Go conversion on
// every kind of value (ties, subnormals, overflow, infinities, the
// default NaN) and lengths with masked tails.
func TestF16Convert(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 65520, 1e6, -1e6, 6e-8, 3e-8, 1e-10,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1 + 0x1p-11, 1 + 3*0x1p-11, 0x1p-14 + 0x1p-25}
	for _, n := range []int{0, 1, 15, 16, 17, 100, 1000} {
		x := make([]float32, n)
		for i := range x {
			if i < len(special) && n > 20 {
				x[i] = special[i]
				continue
			}
			x[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-8)))
		}
		got := make([]uint16, n+1)
		ToF16(got, x)
		for i, v := range x {
			if want := F32ToFP16(v); got[i] != want {
				t.Fatalf("n=%d: ToF16(%g) = %#04x, Go %#04x", n, v, got[i], want)
			}
		}
		if got[n] != 0 {
			t.Fatalf("n=%d: wrote past the end", n)
		}
		r := append([]float32(nil), x...)
		RoundF16(r)
		for i, v := range x {
			if want := FP16ToF32(F32ToFP16(v)); math.Float32bits(r[i]) != math.Float32bits(want) {
				t.Fatalf("n=%d: RoundF16(%g) = %g, Go %g", n, v, r[i], want)
			}
		}
	}
}
