package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// tileDotQ4KRef is the tile kernels' arithmetic on one Q4_K row and one
// Q8_K row of nb blocks, in Go: per block the exact integer dot of levels
// times sub-block scales (sumi) and of mins times sub-block sums (mins),
// then acc = fma(float(sumi), d*y.d, acc) and acc = fma(-float(mins),
// dmin*y.d, acc), each rounded once. The assembly must equal it bit for bit.
func tileDotQ4KRef(w, q []byte, nb int) float32 {
	var acc float32
	for blk := 0; blk < nb; blk++ {
		wb, y := w[blk*144:], q[blk*q8KBlockBytes:]
		d, dmin := FP16ToF32(binary.LittleEndian.Uint16(wb)), FP16ToF32(binary.LittleEndian.Uint16(wb[2:]))
		var sumi, mins int32
		for j := 0; j < 8; j++ {
			sc, m := kqScaleMinK4(j, wb[4:16])
			var c, s int32
			for e := 0; e < 32; e++ {
				k := 32*j + e
				l := wb[16+32*(k/64)+k%32]
				if k%64 >= 32 {
					l >>= 4
				}
				c += int32(l&15) * int32(int8(y[4+k]))
				s += int32(int8(y[4+k]))
			}
			sumi += int32(sc) * c
			mins += int32(m) * s
		}
		da := math.Float32frombits(binary.LittleEndian.Uint32(y))
		acc = fma32(float32(sumi), d*da, acc)
		acc = fma32(-float32(mins), dmin*da, acc)
	}
	return acc
}

// tileDotQ6KRef is tileDotQ4KRef for Q6_K: per block sumi = Σ_j
// scale_j * Σ (level-32)*q8 over 16-element sub-blocks j, exact, then
// acc = fma(float(sumi), d*y.d, acc).
func tileDotQ6KRef(w, q []byte, nb int) float32 {
	var acc float32
	for blk := 0; blk < nb; blk++ {
		wb, y := w[blk*210:], q[blk*q8KBlockBytes:]
		var sumi int32
		for j := 0; j < 16; j++ {
			var c int32
			for e := 0; e < 16; e++ {
				k := 16*j + e
				h, l := k/128, k%128 // half, element in the half
				ql := wb[64*h+l%64]
				if l >= 64 {
					ql >>= 4
				}
				qh := wb[128+32*h+l%32] >> (2 * (l / 32)) & 3
				c += (int32(ql&15|qh<<4) - 32) * int32(int8(y[4+k]))
			}
			sumi += int32(int8(wb[192+j])) * c
		}
		d := FP16ToF32(binary.LittleEndian.Uint16(wb[208:]))
		da := math.Float32frombits(binary.LittleEndian.Uint32(y))
		acc = fma32(float32(sumi), d*da, acc)
	}
	return acc
}

// tileRefs holds the Go model of each tile kernel.
var tileRefs = map[gguf.Type]func(w, q []byte, nb int) float32{
	gguf.TypeQ4_K: tileDotQ4KRef,
	gguf.TypeQ6_K: tileDotQ6KRef,
}

// tileCase makes rows x nb blocks of quantized random weights of t and nt
// Q8_K activation rows (extreme: bytes -128/127 and 0x00/0xFF levels with
// unit scales).
func tileCase(t *testing.T, rng *rand.Rand, typ gguf.Type, rows, nt, nb int, extreme bool) (w, q []byte, rb, qb int) {
	t.Helper()
	f, _ := Lookup(typ)
	cols := nb * 256
	rb, qb = mustRowBytes(typ, cols), mustRowBytes(gguf.TypeQ8_K, cols)
	if extreme {
		w, q = integerRows(rng, typ, rows, nt, nb, true)
		return w, q, rb, qb
	}
	w, q = make([]byte, rows*rb), make([]byte, nt*qb)
	x := make([]float32, cols)
	for r := 0; r < rows; r++ {
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		f.Quantize(w[r*rb:(r+1)*rb], x, nil)
	}
	for k := 0; k < nt; k++ {
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 3)
		}
		if err := QuantizeActivation(gguf.TypeQ8_K, q[k*qb:(k+1)*qb], x); err != nil {
			t.Fatal(err)
		}
	}
	return w, q, rb, qb
}

// TestTileKernels checks each AMX tile kernel against its Go model bit for
// bit (quantized data, extreme bytes, partial row and token groups) and
// against the exact vec_dot within float rounding.
func TestTileKernels(t *testing.T) {
	if !TilesAvailable() {
		t.Skip("no AMX tiles on this CPU or kernel")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for typ, ref := range tileRefs {
		k := tileKernels[typ]
		if k == nil {
			t.Fatalf("%v: no tile kernel", typ)
		}
		t.Run(typ.String(), func(t *testing.T) {
			scratch := make([]byte, amxScratch)
			for iter := 0; iter < 24; iter++ {
				nb := 1 + rng.IntN(5)
				rows, nt := 16, 32
				if iter%3 == 1 {
					rows, nt = 1+rng.IntN(16), 1+rng.IntN(32)
				}
				w, q, rb, qb := tileCase(t, rng, typ, rows, nt, nb, iter%4 == 3)
				gb := nb * amxPackBytes
				packed := make([]byte, 2*gb)
				packQ8KGroup(packed[:gb], q, qb, nt, nb, 0)
				packQ8KGroup(packed[gb:], q, qb, nt, nb, 1)
				acc := make([]float32, 4*256)
				k(acc, w, rb, rows, packed, gb, 2, nb, scratch)
				got := acc[2*256:]
				for r := 0; r < rows; r++ {
					for tk := 0; tk < nt; tk++ {
						g, m := got[256*(tk/16)+16*(tk%16)+r], ref(w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb], nb)
						if !sameFloat(g, m) {
							t.Fatalf("iter %d row %d token %d: %g (%#08x), Go model %g (%#08x)", iter, r, tk,
								g, math.Float32bits(g), m, math.Float32bits(m))
						}
						exact := pureDot(typ)(nb*256, w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb])
						if d := math.Abs(float64(g - exact)); d > 1e-5*math.Abs(float64(exact))+1e-6*scaleOf(w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb], nb) {
							t.Fatalf("iter %d row %d token %d: tiles %g, vec_dot %g", iter, r, tk, g, exact)
						}
					}
				}
			}
		})
	}
}

// scaleOf bounds the magnitude of the terms of a Q4_K/Q6_K x Q8_K dot: the
// absolute error allowance for dots that cancel.
func scaleOf(w, q []byte, nb int) float64 {
	var s float64
	for b := 0; b < nb; b++ {
		dw := math.Abs(float64(FP16ToF32(binary.LittleEndian.Uint16(w[b*len(w)/nb:]))))
		da := math.Abs(float64(math.Float32frombits(binary.LittleEndian.Uint32(q[b*q8KBlockBytes:]))))
		s += dw * da * 256 * 63 * 15 * 128
	}
	return s
}

// TestTileMatMul runs MatMul on the tile path (rows and tokens not
// multiples of 16, several token groups, two threads) and checks every
// output against the Go model bit for bit; with tiles off, MatMul takes
// the rows kernels again.
func TestTileMatMul(t *testing.T) {
	if !TilesAvailable() {
		t.Skip("no AMX tiles on this CPU or kernel")
	}
	defer SetTiles(true)
	for typ, k := range tileKernels {
		if k != nil && tileMinTokens[typ] < packMinTokens {
			t.Fatalf("%v tiles take %d tokens, fewer than the %d packed", gguf.Type(typ), tileMinTokens[typ], packMinTokens)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	p := NewPool(2)
	defer p.Close()
	for typ, ref := range tileRefs {
		const rows, cols = 37, 768
		rb, qb := mustRowBytes(typ, cols), mustRowBytes(gguf.TypeQ8_K, cols)
		m, w := quantizedMatrix(t, rng, typ, rows, cols)
		for _, n := range []int{max(packMinTokens, tileMinTokens[typ]), 16, 41} {
			x := make([]float32, n*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			var acts Activations
			acts.Reset(x, n, cols)
			SetTiles(true)
			out := make([]float32, n*rows)
			p.MatMul(out, &m, &acts)
			q := acts.Quantized(gguf.TypeQ8_K)
			for tk := 0; tk < n; tk++ {
				for r := 0; r < rows; r++ {
					want := ref(w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb], cols/256)
					if got := out[tk*rows+r]; !sameFloat(got, want) {
						t.Fatalf("%v n=%d token %d row %d: %g, Go model %g", typ, n, tk, r, got, want)
					}
				}
			}
			SetTiles(false)
			acts.Reset(x, n, cols)
			p.MatMul(out, &m, &acts)
			for tk := 0; tk < n; tk++ {
				for r := 0; r < rows; r++ {
					want := pureDot(typ)(cols, w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb])
					if got := out[tk*rows+r]; !sameFloat(got, want) {
						t.Fatalf("%v n=%d tiles off, token %d row %d: %g, vec_dot %g", typ, n, tk, r, got, want)
					}
				}
			}
		}
	}
}

// BenchmarkPrefill is a 4096x4096 matrix times n tokens (llama-7b's
// attention projection; n = 512 is a 512-token prompt, 8 and 16 the tile
// path's smallest products, as a MoE expert sees them), on two threads,
// with the tile path and with the rows kernels; tok/s counts the tokens.
func BenchmarkPrefill(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, cols = 4096, 4096
	for _, typ := range []gguf.Type{gguf.TypeQ4_K, gguf.TypeQ6_K} {
		m, _ := quantizedMatrix(b, rng, typ, rows, cols)
		p := NewPool(2)
		for _, n := range []int{8, 16, 512} {
			x := make([]float32, n*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			out := make([]float32, n*rows)
			for _, tiles := range []bool{true, false} {
				name := fmt.Sprintf("%v/n%d/rows", typ, n)
				if tiles {
					if !TilesAvailable() || tileKernels[typ] == nil {
						continue
					}
					name = fmt.Sprintf("%v/n%d/tiles", typ, n)
				}
				b.Run(name, func(b *testing.B) {
					SetTiles(tiles)
					defer SetTiles(true)
					var acts Activations
					for i := 0; i < b.N; i++ {
						acts.Reset(x, n, cols)
						p.MatMul(out, &m, &acts)
					}
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
				})
			}
		}
		p.Close()
	}
}

// TestRowsProductSegments runs RowsProduct on segmented activations (the
// tokens of several experts in one buffer) from two workers: segments of
// packMinTokens rows or more take the tiles (checked against the Go
// model), smaller ones the rows kernels (Format.Dot's bits).
func TestRowsProductSegments(t *testing.T) {
	defer SetTiles(true)
	rng := rand.New(rand.NewPCG(8, 9))
	p := NewPool(2)
	defer p.Close()
	typ := gguf.TypeQ4_K
	const rows, cols = 40, 512
	rb, qb := mustRowBytes(typ, cols), mustRowBytes(gguf.TypeQ8_K, cols)
	m, w := quantizedMatrix(t, rng, typ, rows, cols)
	bounds := []int{0, 3, 3, 23, 32, 33}
	n := bounds[len(bounds)-1]
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, tiles := range []bool{true, false} {
		SetTiles(tiles)
		var acts Activations
		acts.Reset(x, n, cols)
		acts.SetSegments(bounds)
		p.Prepare(&acts, &m)
		q := acts.Quantized(gguf.TypeQ8_K)
		out := make([]float32, n*rows)
		var task segTask
		task = segTask{p: p, m: &m, x: &acts, out: out, bounds: bounds}
		p.Run((len(bounds)-1)*3, 1, &task)
		for s := 0; s+1 < len(bounds); s++ {
			for tk := bounds[s]; tk < bounds[s+1]; tk++ {
				for r := 0; r < rows; r++ {
					want := pureDot(typ)(cols, w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb])
					if tiles && TilesAvailable() && bounds[s+1]-bounds[s] >= packMinTokens {
						want = tileDotQ4KRef(w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb], cols/256)
					}
					if got := out[tk*rows+r]; !sameFloat(got, want) {
						t.Fatalf("tiles=%v segment %d token %d row %d: %g, want %g", tiles, s, tk, r, got, want)
					}
				}
			}
		}
	}
}

// segTask computes each segment's product in three row ranges.
type segTask struct {
	p      *Pool
	m      *Matrix
	x      *Activations
	out    []float32
	bounds []int
}

func (s *segTask) Do(lo, hi, worker int) {
	for u := lo; u < hi; u++ {
		seg, part := u/3, u%3
		r0, r1 := part*16, min(part*16+16, s.m.Rows)
		s.p.RowsProduct(worker, s.out[s.bounds[seg]*s.m.Rows+r0:], s.m.Rows, s.m, r0, r1, s.x, seg)
	}
}

// quantizedMatrix returns rows x cols random normal weights quantized to
// typ, as a Matrix and its bytes.
func quantizedMatrix(t testing.TB, rng *rand.Rand, typ gguf.Type, rows, cols int) (Matrix, []byte) {
	t.Helper()
	f, _ := Lookup(typ)
	rb := mustRowBytes(typ, cols)
	w := make([]byte, rows*rb)
	src := make([]float32, cols)
	for r := 0; r < rows; r++ {
		for i := range src {
			src[i] = float32(rng.NormFloat64())
		}
		f.Quantize(w[r*rb:(r+1)*rb], src, nil)
	}
	m, err := NewMatrix(typ, rows, cols, w)
	if err != nil {
		t.Fatal(err)
	}
	return m, w
}
