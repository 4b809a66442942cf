package kernels

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

// iq12Types are the formats of this group.
var iq12Types = []gguf.Type{gguf.TypeIQ2_XXS, gguf.TypeIQ2_XS, gguf.TypeIQ2_S, gguf.TypeIQ1_S, gguf.TypeIQ1_M}

// TestIQ12Dots checks the integer dot of the IQ2/IQ1 formats on ggml's own
// quantized activations, without the Q8_K quantizer: it must reproduce
// ggml's vec_dot bit for bit (checkDotBits), fed act_q_simd it
// must be within dotTolerance of dot_simd; it logs the worst relative
// errors against dot_simd for both dot paths.
func TestIQ12Dots(t *testing.T) {
	files := loadVectors(t)
	for _, typ := range iq12Types {
		t.Run(typ.String(), func(t *testing.T) {
			f, err := Lookup(typ)
			if err != nil {
				t.Fatal(err)
			}
			vf := iq12Vectors(t, files, typ)
			var worstSIMD, worstF32 float64
			for _, c := range vf.Cases {
				n, rs := c.PerRow, c.RowSize
				deq := make([]float32, n)
				for r := 0; r < c.Rows; r++ {
					q := c.Quant[r*rs : (r+1)*rs]
					if err := checkDotBits(f, n, q, &c, r); err != "" {
						t.Errorf("%s row %d: %s", c.Name, r, err)
					}
					scale := absDotScale(f, deq, q, c.Act)
					got := f.Dot(n, q, c.ActSIMD)
					e := math.Abs(float64(got)-float64(c.DotSIMD[r])) / scale
					if !(e <= dotTolerance) {
						t.Errorf("%s row %d: dot = %g, ggml %g (relative error %.3g)", c.Name, r, got, c.DotSIMD[r], e)
					}
					worstSIMD = max(worstSIMD, e)
					var want float64
					for i := range deq {
						want += float64(deq[i]) * float64(c.Act[i])
					}
					gotF := f.DotF32(q, c.Act)
					eF := math.Abs(float64(gotF)-want) / scale
					if !(eF <= dotTolerance) {
						t.Errorf("%s row %d: f32 dot = %g, want %g (relative error %.3g)", c.Name, r, gotF, want, eF)
					}
					worstF32 = max(worstF32, eF)
				}
			}
			t.Logf("%v: worst relative error dot vs dot_simd %.3g, dotf32 vs float64 %.3g", typ, worstSIMD, worstF32)
		})
	}
}

// TestIQ12Codec checks dequantize and quantize of the IQ2/IQ1 formats
// against ggml (the same checks as TestVectors, without the companion
// Q8_K quantizer).
func TestIQ12Codec(t *testing.T) {
	files := loadVectors(t)
	for _, typ := range iq12Types {
		t.Run(typ.String(), func(t *testing.T) {
			f, err := Lookup(typ)
			if err != nil {
				t.Fatal(err)
			}
			vf := iq12Vectors(t, files, typ)
			for _, c := range vf.Cases {
				n, rs := c.PerRow, c.RowSize
				bad := 0
				for r := 0; r < c.Rows; r++ {
					q := c.Quant[r*rs : (r+1)*rs]
					deq := make([]float32, n)
					f.Dequantize(deq, q)
					if i := firstFloatDiff(deq, c.Dequant[r*n:(r+1)*n]); i >= 0 {
						t.Errorf("%s row %d: dequantize[%d] = %g, ggml %g", c.Name, r, i, deq[i], c.Dequant[r*n+i])
					}
					got := make([]byte, rs)
					f.Quantize(got, c.Src[r*n:(r+1)*n], c.Imatrix)
					if i := firstByteDiff(got, q); i >= 0 {
						bad++
						t.Errorf("%s row %d: quantize byte %d (block %d, offset %d) = %#02x, ggml %#02x", c.Name, r, i,
							i/vf.TypeSize, i%vf.TypeSize, got[i], q[i])
					}
				}
				if bad == 0 {
					t.Logf("%s: %d rows byte-identical", c.Name, c.Rows)
				}
			}
		})
	}
}

func iq12Vectors(t *testing.T, files []*ggqv.File, typ gguf.Type) *ggqv.File {
	t.Helper()
	for _, vf := range files {
		if gguf.Type(vf.TypeID) == typ {
			return vf
		}
	}
	t.Fatalf("no test vectors for %v", typ)
	return nil
}

// TestIQ12SearchTables checks the counting-sort neighbour lists against a
// literal port of ggml's iq2xs_init_impl (qsort by distance then index,
// cut after nwant distinct distances) on a sample of the lattice points.
func TestIQ12SearchTables(t *testing.T) {
	iq2Levels := [3]uint8{0x08, 0x19, 0x2b}
	for _, tc := range []struct {
		name   string
		tab    *iq12Search
		dgrid  []uint64
		levels [3]uint8
		nwant  int
		step   int
	}{
		{"iq2xxs", iq2xxsSearch(), iq2xxsGrid[:], iq2Levels, 2, 7},
		{"iq2xs", iq2xsSearch(), iq2xsGrid[:], iq2Levels, 2, 11},
		{"iq2s", iq2sSearch(), iq2sGrid[:], iq2Levels, 1, 13},
		{"iq1", iq1Search(), iq1sGrid[:], [3]uint8{0xff, 0x00, 0x01}, 3, 31},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := tc.tab
			if len(tab.grid) != len(tc.dgrid) {
				t.Fatalf("grid has %d points, want %d", len(tab.grid), len(tc.dgrid))
			}
			// Level l of the search grid must be dequantizer byte levels[l].
			for i, p := range tab.grid {
				for k, c := range p {
					if b := uint8(tc.dgrid[i] >> (8 * k)); c < 1 || c > 5 || tc.levels[(c-1)/2] != b {
						t.Fatalf("grid point %d weight %d: level value %d, dequantizer byte %#02x", i, k, c, b)
					}
				}
			}
			onGrid := 0
			for u := 0; u < iq12MapSize; u++ {
				if tab.gridMap[u] >= 0 {
					onGrid++
					// The point must decode back to its lattice index.
					p := tab.grid[tab.gridMap[u]]
					v := 0
					for k, c := range p {
						v |= int(c-1) / 2 << (2 * k)
					}
					if v != u {
						t.Fatalf("grid point %d has index %d, mapped from %d", tab.gridMap[u], v, u)
					}
				}
			}
			if onGrid != len(tc.dgrid) {
				t.Fatalf("%d lattice points on the grid, want %d", onGrid, len(tc.dgrid))
			}
			type pair struct{ d2, j int }
			for u := 0; u < iq12MapSize; u += tc.step {
				if tab.gridMap[u] >= 0 {
					continue
				}
				pairs := make([]pair, len(tab.grid))
				for j, p := range tab.grid {
					d := 0
					for k := range 8 {
						e := int(p[k]) - (2*(u>>(2*k)&3) + 1)
						d += e * e
					}
					pairs[j] = pair{d, j}
				}
				slices.SortFunc(pairs, func(a, b pair) int {
					return cmp.Or(cmp.Compare(a.d2, b.d2), cmp.Compare(a.j, b.j))
				})
				var want []uint16
				d2, nhave := pairs[0].d2, 1
				for _, p := range pairs {
					if p.d2 > d2 {
						if nhave == tc.nwant {
							break
						}
						d2 = p.d2
						nhave++
					}
					want = append(want, uint16(p.j))
				}
				if got := tab.neighboursOf(u); !slices.Equal(got, want) {
					t.Fatalf("lattice point %d: neighbours %v, ggml's rule gives %v", u, got, want)
				}
			}
		})
	}
}

// TestIQ12QuantizeGarbage feeds NaN, infinities, huge and tiny values and
// odd importance weights to the quantizers (where ggml may abort): they
// must not panic, and dequantizing and both dots must not panic either.
func TestIQ12QuantizeGarbage(t *testing.T) {
	const n = 2 * iq12QK
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	rows := map[string]func(i int) float32{
		"nan":      func(i int) float32 { return nan },
		"some-nan": func(i int) float32 { return []float32{nan, 1, -2, 0.5}[i%4] },
		"inf":      func(i int) float32 { return []float32{inf, -inf, 1, 0}[i%4] },
		"huge":     func(i int) float32 { return float32(i%5-2) * 3e38 },
		"tiny":     func(i int) float32 { return float32(i%7-3) * 1e-40 },
		"negzero":  func(i int) float32 { return float32(math.Copysign(0, -1)) },
	}
	imats := map[string]func(i int) float32{
		"nil":      nil,
		"zeros":    func(int) float32 { return 0 },
		"negative": func(i int) float32 { return -float32(i%3 + 1) },
		"nan":      func(i int) float32 { return nan },
		"inf":      func(i int) float32 { return inf },
	}
	for _, typ := range iq12Types {
		f, err := Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := typ.RowBytes(n)
		for rn, row := range rows {
			for in, im := range imats {
				src := make([]float32, n)
				for i := range src {
					src[i] = row(i)
				}
				var imat []float32
				if im != nil {
					imat = make([]float32, n)
					for i := range imat {
						imat[i] = im(i)
					}
				}
				dst := make([]byte, rb)
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("%v quantize row %s imatrix %s: panic %v", typ, rn, in, r)
						}
					}()
					f.Quantize(dst, src, imat)
					f.Dequantize(make([]float32, n), dst)
					f.DotF32(dst, src)
					f.Dot(n, dst, make([]byte, n/iq12QK*iq12Q8KBytes))
				}()
			}
		}
	}
}

// TestIQ12RandomBlocks decodes random bytes (NaN and infinite fp16 scales
// included) with every IQ2/IQ1 kernel: no panics, and the dot paths agree
// with the dequantized values wherever those are finite.
func TestIQ12RandomBlocks(t *testing.T) {
	const n = 8 * iq12QK
	rng := rand.New(rand.NewPCG(7, 10))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, typ := range iq12Types {
		f, _ := Lookup(typ)
		rb, _ := typ.RowBytes(n)
		w := make([]byte, rb)
		for i := range w {
			w[i] = byte(rng.Uint32())
		}
		deq := make([]float32, n)
		f.Dequantize(deq, w)
		var want, scale float64
		for i := range deq {
			want += float64(deq[i]) * float64(x[i])
			scale += math.Abs(float64(deq[i]) * float64(x[i]))
		}
		got := f.DotF32(w, x)
		if math.IsInf(scale, 0) || math.IsNaN(scale) {
			t.Logf("%v: skipped, a random scale is NaN or Inf", typ)
			continue
		}
		if e := math.Abs(float64(got)-want) / max(scale, 1e-30); !(e <= dotTolerance) {
			t.Errorf("%v: f32 dot of random blocks = %g, want %g (relative error %.3g)", typ, got, want, e)
		}
	}
}

// TestIQ12NoAllocs checks that dequantize and both dots do not allocate.
func TestIQ12NoAllocs(t *testing.T) {
	const n = 4 * iq12QK
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%17) - 8
	}
	a := make([]byte, n/iq12QK*iq12Q8KBytes)
	for _, typ := range iq12Types {
		f, _ := Lookup(typ)
		rb, _ := typ.RowBytes(n)
		w := make([]byte, rb)
		f.Quantize(w, x, iq12Ones(n))
		dst := make([]float32, n)
		if allocs := testing.AllocsPerRun(10, func() {
			f.Dequantize(dst, w)
			sink = f.Dot(n, w, a)
			sink = f.DotF32(w, x)
		}); allocs != 0 {
			t.Errorf("%v: %v allocations per dequantize+dot+dotf32", typ, allocs)
		}
	}
}

// TestIQ12QuantizeConcurrent quantizes from several goroutines at once, so
// that the lazily built search tables are exercised under -race.
func TestIQ12QuantizeConcurrent(t *testing.T) {
	files := loadVectors(t)
	var wg sync.WaitGroup
	for _, typ := range iq12Types {
		vf := iq12Vectors(t, files, typ)
		f, _ := Lookup(typ)
		for _, c := range vf.Cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got := make([]byte, c.RowSize)
				for r := 0; r < c.Rows; r++ {
					f.Quantize(got, c.Src[r*c.PerRow:(r+1)*c.PerRow], c.Imatrix)
					if !bytes.Equal(got, c.Quant[r*c.RowSize:(r+1)*c.RowSize]) {
						t.Errorf("%v %s row %d: concurrent quantize differs from ggml", typ, c.Name, r)
					}
				}
			}()
		}
	}
	wg.Wait()
}
