package kernels

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

var iq34Types = []gguf.Type{gguf.TypeIQ4_NL, gguf.TypeIQ4_XS, gguf.TypeIQ3_XXS, gguf.TypeIQ3_S}

// TestIQ34Vectors checks IQ4_NL, IQ4_XS, IQ3_XXS and IQ3_S against ggml
// without needing the companion activation quantizer: the dot products are
// fed ggml's own quantized activations. It asserts that the integer dot
// reproduces ggml's vec_dot bit for bit (checkDotBits), and
// logs the worst relative error against dot_simd and of DotF32.
func TestIQ34Vectors(t *testing.T) {
	dir := ggqv.Dir()
	if dir == "" {
		t.Skip("../shared/testdata/quants not found")
	}
	for _, typ := range iq34Types {
		t.Run(typ.String(), func(t *testing.T) {
			vf, err := ggqv.Read(filepath.Join(dir, strings.ToLower(typ.String())+".ggqv"))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Lookup(typ)
			if err != nil {
				t.Fatal(err)
			}
			var worstSIMD, worstF32 float64
			for _, c := range vf.Cases {
				n, rs := c.PerRow, c.RowSize
				deq := make([]float32, n)
				q := make([]byte, rs)
				for r := 0; r < c.Rows; r++ {
					src := c.Src[r*n : (r+1)*n]
					want := c.Quant[r*rs : (r+1)*rs]
					f.Dequantize(deq, want)
					if i := firstFloatDiff(deq, c.Dequant[r*n:(r+1)*n]); i >= 0 {
						t.Errorf("%s row %d: dequantize[%d] = %g, ggml %g", c.Name, r, i, deq[i], c.Dequant[r*n+i])
					}
					f.Quantize(q, src, c.Imatrix)
					if i := firstByteDiff(q, want); i >= 0 {
						t.Errorf("%s row %d: quantize byte %d = %#02x, ggml %#02x", c.Name, r, i, q[i], want[i])
					}
					if c.QuantCPU != nil {
						quantizeCPU(f, q, src)
						if i := iq4CPUDiff(typ, q, c.QuantCPU[r*rs:(r+1)*rs], src); i >= 0 {
							t.Errorf("%s row %d: CPU quantize byte %d = %#02x, ggml %#02x", c.Name, r, i, q[i], c.QuantCPU[r*rs+i])
						}
					}
					scale := absDotScale(f, deq, want, c.Act)
					got := f.Dot(n, want, c.ActSIMD)
					worstSIMD = max(worstSIMD, math.Abs(float64(got)-float64(c.DotSIMD[r]))/scale)
					if err := checkDotBits(f, n, want, &c, r); err != "" {
						t.Errorf("%s row %d: %s", c.Name, r, err)
					}
					var ref float64
					for i := range deq {
						ref += float64(deq[i]) * float64(c.Act[i])
					}
					worstF32 = max(worstF32, math.Abs(float64(f.DotF32(want, c.Act))-ref)/scale)
				}
			}
			t.Logf("%v: worst relative dot error vs dot_simd %.3g, DotF32 vs float64 %.3g", typ, worstSIMD, worstF32)
			if !(worstSIMD <= dotTolerance) || !(worstF32 <= dotTolerance) {
				t.Errorf("%v: dot errors above %g", typ, dotTolerance)
			}
		})
	}
}

// iq4CPUDiff compares a CPU-quantized row with ggml's. For IQ4_NL the
// index bytes of all-zero blocks at the start of a row are not compared:
// ggml writes there what its stack held from the previous call (see
// quantizeIQ4NLCPU); they decode to ±0 whatever they are.
func iq4CPUDiff(typ gguf.Type, got, want []byte, src []float32) int {
	for i := range got {
		if got[i] == want[i] {
			continue
		}
		if typ == gguf.TypeIQ4_NL && i%iq4nlBlockBytes >= 2 && iq4nlLeadingZeroBlock(src, i/iq4nlBlockBytes) {
			continue
		}
		return i
	}
	return -1
}

func iq4nlLeadingZeroBlock(src []float32, blk int) bool {
	for _, v := range src[:32*(blk+1)] {
		if v != 0 {
			return false
		}
	}
	return true
}

// TestIQ4NLCPUZeroBlocks pins the within-row behaviour ggml's IQ4_NL
// from_float has for all-zero blocks: the previous block's indices are
// repeated, and a row starting with zeros gets index 8.
func TestIQ4NLCPUZeroBlocks(t *testing.T) {
	src := make([]float32, 96)
	for i := 32; i < 64; i++ {
		src[i] = float32(i%7) - 3
	}
	dst := make([]byte, 3*iq4nlBlockBytes)
	quantizeIQ4NLCPU(dst, src)
	for j := 2; j < iq4nlBlockBytes; j++ {
		if dst[j] != 0x88 {
			t.Fatalf("leading zero block byte %d = %#02x, want 0x88", j, dst[j])
		}
		if dst[2*iq4nlBlockBytes+j] != dst[iq4nlBlockBytes+j] {
			t.Fatalf("trailing zero block byte %d = %#02x, want the previous block's %#02x", j, dst[2*iq4nlBlockBytes+j], dst[iq4nlBlockBytes+j])
		}
	}
	if binary.LittleEndian.Uint16(dst[2*iq4nlBlockBytes:]) != 0 {
		t.Fatal("zero block has a non-zero scale")
	}
}

// TestIQ3Grids checks the copied grids against what ggml's iq3xs_init_impl
// relies on: every byte is one of the 8 magnitudes, and the lattice points
// of the entries increase strictly (ggml's kgrid_256/kgrid_512 lists are
// sorted), so the grid order is the quantizer's index order.
func TestIQ3Grids(t *testing.T) {
	for _, g := range []struct {
		name   string
		grid   []uint32
		levels [8]uint8
		lat    *iq3Lattice
	}{
		{"iq3xxs_grid", iq3xxsGrid[:], [8]uint8{4, 12, 20, 28, 36, 44, 52, 62}, iq3XXSLattice()},
		{"iq3s_grid", iq3sGrid[:], [8]uint8{1, 3, 5, 7, 9, 11, 13, 15}, iq3SLattice()},
	} {
		prev := -1
		for k, e := range g.grid {
			u := 0
			for i := 0; i < 4; i++ {
				b := uint8(e >> (8 * i))
				l := -1
				for j, v := range g.levels {
					if v == b {
						l = j
					}
				}
				if l < 0 {
					t.Fatalf("%s[%d] = %#08x: byte %d is not a level", g.name, k, e, i)
				}
				u |= l << (3 * i)
			}
			if u <= prev {
				t.Fatalf("%s[%d]: lattice point %d after %d", g.name, k, u, prev)
			}
			prev = u
			if int(g.lat.index[u]) != k {
				t.Fatalf("%s: index[%d] = %d, want %d", g.name, u, g.lat.index[u], k)
			}
		}
		for u := range g.lat.index {
			nb := g.lat.nbrs[g.lat.nbrStart[u]:g.lat.nbrStart[u+1]]
			if (g.lat.index[u] >= 0) != (len(nb) == 0) {
				t.Fatalf("%s: point %d: on grid %v with %d neighbours", g.name, u, g.lat.index[u] >= 0, len(nb))
			}
		}
		t.Logf("%s: %d neighbour entries", g.name, len(g.lat.nbrs))
	}
}

// TestIQ34BadInput feeds NaN, Inf, huge and subnormal values to the
// quantizers (with and without an importance matrix); they must not
// panic, and the results must decode and dot without panicking.
func TestIQ34BadInput(t *testing.T) {
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 3e38, -3e38, 1e-45, -1e-45, 0, float32(math.Copysign(0, -1))}
	const n = 512
	for _, typ := range iq34Types {
		f, _ := Lookup(typ)
		for si, sv := range specials {
			src := make([]float32, n)
			im := make([]float32, n)
			for i := range src {
				src[i] = float32(i%13) - 6
				im[i] = 1
				if i%(si+2) == 0 {
					src[i] = sv
					im[i] = sv
				}
			}
			rb, _ := typ.RowBytes(n)
			q := make([]byte, rb)
			deq := make([]float32, n)
			for _, imx := range [][]float32{nil, im} {
				f.Quantize(q, src, imx)
				f.Dequantize(deq, q)
				f.DotF32(q, src)
				ab, _ := f.VecDot.RowBytes(n)
				f.Dot(n, q, make([]byte, ab))
			}
			if f.QuantizeCPU != nil {
				f.QuantizeCPU(q, src)
			}
		}
	}
}
