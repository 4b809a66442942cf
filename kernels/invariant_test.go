package kernels

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// TestMain runs the package's tests in llama.cpp's mode (kernels chosen by
// token count), which most of them compare with ggml bit for bit;
// TestBatchInvariantMatMul switches the batch-invariant mode on.
func TestMain(m *testing.M) {
	SetBatchInvariant(false)
	os.Exit(m.Run())
}

// goTileKernel is a tile kernel in Go (tileDotQ4KRef or tileDotQ6KRef on
// the packed tokens unpacked back to Q8_K), so that the tile path's
// dispatch runs on CPUs without AMX.
func goTileKernel(ref func(w, q []byte, nb int) float32) tileKernel {
	return func(acc []float32, w []byte, rowBytes, rows int, b []byte, gstride, ngroups, nb int, _ []byte) {
		y := make([]byte, nb*q8KBlockBytes)
		for g := 0; g < ngroups; g++ {
			for t := 0; t < amxTileTokens; t++ {
				for blk := 0; blk < nb; blk++ {
					p, yb := b[g*gstride+blk*amxPackBytes:], y[blk*q8KBlockBytes:]
					copy(yb[:4], p[amxPackD+4*t:])
					for k := 0; k < 64; k++ {
						copy(yb[4+4*k:8+4*k], p[512*(k/8)+64*(k%8)+4*t:])
					}
				}
				for r := 0; r < rows; r++ {
					acc[256*(ngroups+g)+16*t+r] = ref(w[r*rowBytes:], y, nb)
				}
			}
		}
	}
}

// withGoTiles makes the tile path available with the Go kernels where the
// CPU has no AMX, until the test ends.
func withGoTiles(t *testing.T) {
	if TilesAvailable() {
		return
	}
	saved := tileKernels
	tilesVariant.available = true
	for typ, ref := range tileRefs {
		tileKernels[typ] = goTileKernel(ref)
	}
	t.Cleanup(func() {
		tileKernels, tilesVariant.available = saved, false
	})
}

// TestBatchInvariantMatMul checks that in the batch-invariant mode a
// token's row of a product (MatMul, and RowsProduct over segments of
// several lengths) is the same bits whatever the number of tokens in the
// product, for the types whose kernel llama.cpp picks by token count
// (F32, F16, BF16 tinyBLAS; IQ4_NL and IQ2_XXS batched dots; Q4_K and
// Q6_K tiles, AMX or their Go model), and that in llama.cpp's mode some
// of them do depend on it (so the comparison can fail).
func TestBatchInvariantMatMul(t *testing.T) {
	withGoTiles(t)
	defer SetBatchInvariant(false)
	rng := rand.New(rand.NewPCG(17, 9))
	p := NewPool(2)
	defer p.Close()
	const rows, cols = 32, 512
	const most = 41
	x := make([]float32, most*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	product := func(m *Matrix, n int) []float32 {
		var acts Activations
		acts.Reset(x, n, cols)
		out := make([]float32, n*rows)
		p.MatMul(out, m, &acts)
		return out
	}
	for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeIQ4_NL, gguf.TypeIQ2_XXS, gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeQ8_0} {
		m, _ := quantizedMatrix(t, rng, typ, rows, cols)
		for _, invariant := range []bool{false, true} {
			SetBatchInvariant(invariant)
			alone := make([]float32, most*rows) // token t's row computed alone
			for tk := 0; tk < most; tk++ {
				var acts Activations
				acts.Reset(x[tk*cols:], 1, cols)
				p.MatMul(alone[tk*rows:(tk+1)*rows], &m, &acts)
			}
			differs := false
			for _, n := range []int{2, 7, 8, 16, 17, most} {
				got := product(&m, n)
				for i := range got {
					if !sameFloat(got[i], alone[i]) {
						if invariant {
							t.Fatalf("%v, %d tokens: token %d row %d is %g, alone %g", typ, n, i/rows, i%rows, got[i], alone[i])
						}
						differs = true
						break
					}
				}
			}
			if !invariant && !differs && typ != gguf.TypeQ8_0 {
				t.Errorf("%v: llama.cpp's mode gives every token's row alone too: the kernel choice is not exercised", typ)
			}
		}
		// MoE experts: segments of different lengths through RowsProduct.
		if m.format.VecDot != gguf.TypeQ8_K && m.format.VecDot != gguf.TypeQ8_0 && m.format.VecDot != gguf.TypeF32 {
			continue
		}
		SetBatchInvariant(true)
		bounds := []int{0, 1, 8, 8, 24, 41}
		var acts Activations
		acts.Reset(x, most, cols)
		acts.SetSegments(bounds)
		p.Prepare(&acts, &m)
		out := make([]float32, most*rows)
		task := segTask{p: p, m: &m, x: &acts, out: out, bounds: bounds}
		p.Run((len(bounds)-1)*3, 1, &task)
		want := product(&m, 1)
		for tk := 0; tk < most; tk++ {
			var one Activations
			one.Reset(x[tk*cols:], 1, cols)
			p.MatMul(want, &m, &one)
			for r := 0; r < rows; r++ {
				if !sameFloat(out[tk*rows+r], want[r]) {
					t.Fatalf("%v RowsProduct: token %d row %d is %g, alone %g", typ, tk, r, out[tk*rows+r], want[r])
				}
			}
		}
	}
}

// BenchmarkBatchInvariant is a 1024x1024 product with 1 (decode) and 64
// tokens (a prompt chunk) per type, in llama.cpp's mode (kernels chosen by
// token count) and in the batch-invariant mode (per-row kernels); on AMX
// CPUs llama.cpp's mode takes the tiles for Q4_K and Q6_K.
func BenchmarkBatchInvariant(b *testing.B) {
	defer SetBatchInvariant(false)
	rng := rand.New(rand.NewPCG(3, 4))
	p := NewPool(2)
	defer p.Close()
	const rows, cols = 1024, 1024
	for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeIQ4_NL, gguf.TypeIQ2_XXS, gguf.TypeQ4_K, gguf.TypeQ6_K} {
		m, _ := quantizedMatrix(b, rng, typ, rows, cols)
		for _, n := range []int{1, 64} {
			x := make([]float32, n*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			out := make([]float32, n*rows)
			for _, invariant := range []bool{false, true} {
				mode := "llama"
				if invariant {
					mode = "invariant"
				}
				b.Run(fmt.Sprintf("%v/n=%d/%s", typ, n, mode), func(b *testing.B) {
					SetBatchInvariant(invariant)
					var acts Activations
					for i := 0; i < b.N; i++ {
						acts.Reset(x, n, cols)
						p.MatMul(out, &m, &acts)
					}
					b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
				})
			}
		}
	}
}

// TestBlockRowsKernels checks the rows kernels in the tile kernels'
// arithmetic against its Go model (tileDotQ4KRef, tileDotQ6KRef) bit for
// bit: quantized random rows and extreme bytes, 1 to 13 rows (the
// one-token streams and their tails), 1 to 8 tokens.
func TestBlockRowsKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for typ, ref := range tileRefs {
		k := blockRows[typ]
		if k == nil {
			t.Logf("%v: no block rows kernel on this CPU", typ)
			continue
		}
		for _, extreme := range []bool{false, true} {
			for _, rows := range []int{1, 3, 4, 5, 8, 13} {
				for _, nt := range []int{1, 2, 7, 8} {
					const nb = 3
					w, q, rb, qb := tileCase(t, rng, typ, rows, nt, nb, extreme)
					out := make([]float32, nt*rows)
					k(out, rows, w, rows, q, qb, nt, nb*256)
					for tk := 0; tk < nt; tk++ {
						for r := 0; r < rows; r++ {
							want := ref(w[r*rb:(r+1)*rb], q[tk*qb:(tk+1)*qb], nb)
							if got := out[tk*rows+r]; !sameFloat(got, want) {
								t.Fatalf("%v extreme=%v rows=%d nt=%d: token %d row %d is %g, Go model %g", gguf.Type(typ), extreme, rows, nt, tk, r, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// BenchmarkBlockRows is one thread's 4096x4096 product with 1 and 8
// tokens on the vec_dot rows kernel and on the rows kernel in the tile
// kernels' arithmetic (what the batch-invariant mode runs on AMX CPUs for
// products too small for the tiles).
func BenchmarkBlockRows(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 4096, 4096
	for _, typ := range []gguf.Type{gguf.TypeQ4_K, gguf.TypeQ6_K} {
		if blockRows[typ] == nil || active[typ] == nil {
			b.Skipf("%v: no assembly kernels on this CPU", typ)
		}
		m, w := quantizedMatrix(b, rng, typ, rows, cols)
		for _, nt := range []int{1, 8} {
			x := make([]float32, nt*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			var acts Activations
			acts.Reset(x, nt, cols)
			q := acts.Quantized(gguf.TypeQ8_K)
			qb := len(q) / nt
			out := make([]float32, nt*rows)
			for _, k := range []struct {
				name string
				fn   rowsKernel
			}{{"vecdot", active[typ].fn}, {"block", blockRows[typ]}} {
				b.Run(fmt.Sprintf("%v/n=%d/%s", typ, nt, k.name), func(b *testing.B) {
					b.SetBytes(int64(len(w)))
					for i := 0; i < b.N; i++ {
						k.fn(out, rows, w, rows, q, qb, nt, cols)
					}
				})
			}
		}
		_ = m
	}
}
