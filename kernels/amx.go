package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// Prompt processing on AMX tiles.
//
// With many tokens a matrix product is bound by arithmetic, not by memory,
// and the AVX-512 rows kernels spend most of it on multiplies that keep
// ggml's eight SIMD lanes apart. The tile path computes each block's
// integer dot products exactly with AMX (TDPBSSD, a 16x16 tile of weight
// rows x tokens per 32-element sub-block) and rounds once per block and
// token to float, where ggml's vec_dot rounds once per block and lane: the
// results differ from vec_dot in the last bits, as llama.cpp's own AMX path
// (its default on these CPUs) does. Decode (one token) and small batches
// keep the bit-exact rows kernels; SetTiles(false) keeps them everywhere.
//
// The weights are read in place from the mapped file: each kernel call
// unpacks the blocks of 16 rows into a per-worker scratch, and the
// activations are repacked once per product into the tiles' layout.

// Layout constants shared with ../_asm/amx.go.
const (
	amxPackBytes  = 4416            // packed activations per block and group of 16 tokens
	amxPackD      = 4096            // 16 f32 scales
	amxPackSums   = 4160            // 4 vectors of 16 tokens x 2 int16 sub-block sums
	amxScratch    = 16*576 + 4*1024 // row records (at most 576 bytes), then four C tiles
	amxTileTokens = 16
	amxTileRows   = 16
)

// tileKernel computes 16 weight rows (rows of them read from w, rowBytes
// apart) times ngroups groups of 16 packed tokens (group g at b[g*gstride:])
// over nb blocks; acc has 2*ngroups*256 floats, the results land in
// acc[256*(ngroups+g)+16*t+r].
type tileKernel func(acc []float32, w []byte, rowBytes, rows int, b []byte, gstride, ngroups, nb int, scratch []byte)

// tilesMinTokens is the fewest tokens a product needs to take the tile
// path: a tile always computes 16 tokens, so below this the rows kernels
// waste less.
const tilesMinTokens = 8

var (
	// tileKernels holds the tile kernel per weight type where the CPU has
	// one (set up by the architecture's init).
	tileKernels [gguf.TypeCount]tileKernel
	// tilesVariant switches the tile path (isa "amx").
	tilesVariant = newFnVariant("amx")
)

// SetTiles switches the AMX tile path for prompt processing on or off
// (on by default where the CPU has AMX). Off, every product uses the rows
// kernels, which reproduce ggml's vec_dot bit for bit. Not safe to call
// while kernels run.
func SetTiles(on bool) { tilesVariant.enable = on }

// TilesAvailable reports whether this CPU and kernel run the tile path.
func TilesAvailable() bool { return tilesVariant.available }

// tileKernelFor returns the tile kernel for a product of w with n tokens,
// or nil when the rows kernels take it.
func tileKernelFor(w *Matrix, n int) tileKernel {
	if !tilesVariant.on() || n < tilesMinTokens || int(w.Type) >= len(tileKernels) || w.Cols%256 != 0 {
		return nil
	}
	return tileKernels[w.Type]
}

// packedQ8KBytes is the size of n tokens of nb Q8_K blocks packed for the
// tiles.
func packedQ8KBytes(n, nb int) int {
	return tileGroups(n) * nb * amxPackBytes
}

// tileGroups is the number of token groups n tokens are packed into: an
// even number (the Q4_K kernel takes groups in pairs); missing tokens are
// zero.
func tileGroups(n int) int {
	g := (n + amxTileTokens - 1) / amxTileTokens
	return g + g%2
}

// packQ8KGroup packs tokens [16g, 16g+16) of q (rows of nb Q8_K blocks,
// qRow bytes apart, n rows in all) into dst (nb*amxPackBytes bytes):
// per block, the eight sub-blocks as B tiles (row k of sub-block j holds
// elements 32j+4k..32j+4k+3 of each token), the tokens' scales, and the
// sub-block sums in pairs. Missing tokens are zero.
func packQ8KGroup(dst, q []byte, qRow, n, nb, g int) {
	clear(dst[:nb*amxPackBytes])
	for t := 0; t < amxTileTokens; t++ {
		tok := g*amxTileTokens + t
		if tok >= n {
			break
		}
		row := q[tok*qRow:]
		for b := 0; b < nb; b++ {
			blk := row[b*q8KBlockBytes : (b+1)*q8KBlockBytes]
			p := dst[b*amxPackBytes : (b+1)*amxPackBytes]
			qs := blk[4:260]
			for k := 0; k < 64; k++ { // 64 groups of 4 bytes: sub-block k/8, row k%8
				copy(p[512*(k/8)+64*(k%8)+4*t:][:4], qs[4*k:4*k+4])
			}
			copy(p[amxPackD+4*t:][:4], blk[:4])
			for j := 0; j < 8; j++ {
				s := int16(binary.LittleEndian.Uint16(blk[260+4*j:])) + int16(binary.LittleEndian.Uint16(blk[262+4*j:]))
				binary.LittleEndian.PutUint16(p[amxPackSums+64*(j/2)+4*t+2*(j%2):], uint16(s))
			}
		}
	}
}

// tilesOf returns x's Q8_K rows packed for the tile kernels, packing them
// (shared out over p) on first use.
func (x *Activations) tilesOf(p *Pool) []byte {
	nb := x.Cols / 256
	size := packedQ8KBytes(x.N, nb)
	if x.tilesValid {
		return x.tiles[:size]
	}
	q := x.quantized(p, gguf.TypeQ8_K)
	if cap(x.tiles) < size {
		x.tiles = make([]byte, size)
	}
	pt := &p.pt
	*pt = packTask{dst: x.tiles[:size], q: q, qRow: len(q) / x.N, n: x.N, nb: nb}
	p.Run(tileGroups(x.N), 1, pt)
	*pt = packTask{}
	x.tilesValid = true
	return x.tiles[:size]
}

// packTask packs token groups [lo, hi).
type packTask struct {
	dst, q      []byte
	qRow, n, nb int
}

func (t *packTask) Do(lo, hi, _ int) {
	gb := t.nb * amxPackBytes
	for g := lo; g < hi; g++ {
		packQ8KGroup(t.dst[g*gb:(g+1)*gb], t.q, t.qRow, t.n, t.nb, g)
	}
}

// tileTask is a tile product's work: row groups of 16, each worker with its
// own scratch and accumulator tile.
type tileTask struct {
	out     []float32
	w       *Matrix
	packed  []byte
	n, nb   int
	gpc     int // token groups per kernel call, even
	kernel  tileKernel
	scratch [][]byte
	acc     [][]float32
}

// tileGroupBytes is how many bytes of packed tokens one kernel call takes
// at most: they stay in L2 while the call's row groups pass over them.
const tileGroupBytes = 1 << 20

// tileMatMul is MatMul on the tile kernel k.
func (p *Pool) tileMatMul(out []float32, w *Matrix, x *Activations, k tileKernel) {
	tt := &p.tt
	for len(tt.scratch) < p.threads {
		tt.scratch = append(tt.scratch, make([]byte, amxScratch))
		tt.acc = append(tt.acc, nil)
	}
	tt.out, tt.w, tt.n, tt.nb, tt.kernel = out[:x.N*w.Rows], w, x.N, x.Cols/256, k
	tt.gpc = max(2, tileGroupBytes/(tt.nb*amxPackBytes)&^1)
	for i := range tt.acc {
		if len(tt.acc[i]) < 2*tt.gpc*256 {
			tt.acc[i] = make([]float32, 2*tt.gpc*256)
		}
	}
	tt.packed = x.tilesOf(p)
	p.Run((w.Rows+amxTileRows-1)/amxTileRows, 1, tt)
	tt.out, tt.w, tt.packed, tt.kernel = nil, nil, nil, nil
}

func (tt *tileTask) Do(lo, hi, worker int) {
	w, rb := tt.w, tt.w.RowBytes
	scratch, acc := tt.scratch[worker], tt.acc[worker]
	gb := tt.nb * amxPackBytes
	groups := tileGroups(tt.n)
	// Row groups in chunks that stay in L2 while every token group passes.
	step := max(1, rowBlockBytes/(amxTileRows*rb))
	for c0 := lo; c0 < hi; c0 += step {
		c1 := min(c0+step, hi)
		for g0 := 0; g0 < groups; g0 += tt.gpc {
			ng := min(tt.gpc, groups-g0)
			b := tt.packed[g0*gb : (g0+ng)*gb]
			for rg := c0; rg < c1; rg++ {
				r0 := rg * amxTileRows
				rows := min(amxTileRows, w.Rows-r0)
				tt.kernel(acc, w.Data[r0*rb:], rb, rows, b, gb, ng, tt.nb, scratch)
				res := acc[ng*256:]
				for t := g0 * amxTileTokens; t < min(tt.n, (g0+ng)*amxTileTokens); t++ {
					i := (t - g0*amxTileTokens) * amxTileRows
					copy(tt.out[t*w.Rows+r0:t*w.Rows+r0+rows], res[i:i+rows])
				}
			}
		}
	}
}
