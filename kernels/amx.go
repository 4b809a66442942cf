package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/inference-x/inference-x/gguf"
)

// Prompt processing on AMX tiles.
//
// With many tokens a matrix product is bound by arithmetic, not by memory,
// and the AVX-512 rows kernels spend most of it on multiplies that keep
// ggml's eight SIMD lanes apart. The tile path computes each block's
// integer dot product exactly with AMX (TDPBSSD on 16 weight rows x 16
// tokens x 64 elements) and rounds once per block and token to float,
// where ggml's vec_dot rounds once per block and lane: the results differ
// from vec_dot in the last bits, as llama.cpp's own AMX path (its default
// on these CPUs) does. Decode (one token) and small batches keep the
// bit-exact rows kernels; SetTiles(false) keeps them everywhere.
//
// The per-sub-block scales are folded into the int8 levels so that a tile
// covers whole 64-element chunks: Q4_K's 6-bit scales as 8*hi + lo (two
// tiles of levels times 3-bit parts), Q6_K's int8 scales as balanced
// base-7 digits (three tiles of (levels-32) times digits in [-3, 3]).
//
// The weights are read in place from the mapped file: each kernel call
// unpacks a block of 16 rows into a per-worker scratch once for all the
// token groups of the call, and the activations are repacked once per
// product into the tiles' layout.

// Layout constants shared with ../_asm/amx.go.
const (
	amxPackBytes  = 4416            // packed activations per block and group of 16 tokens
	amxPackD      = 4096            // 16 f32 scales
	amxPackSums   = 4160            // 4 vectors of 16 tokens x 2 int16 sub-block sums
	amxScratch    = 16*832 + 3*1024 // row records (at most 832 bytes), then up to three C tiles
	amxTileTokens = 16
	amxTileRows   = 16
)

// tileKernel computes 16 weight rows (rows of them read from w, rowBytes
// apart) times ngroups groups of 16 packed tokens (group g at b[g*gstride:])
// over nb blocks; acc has 2*ngroups*256 floats, the results land in
// acc[256*(ngroups+g)+16*t+r].
type tileKernel func(acc []float32, w []byte, rowBytes, rows int, b []byte, gstride, ngroups, nb int, scratch []byte)

// packMinTokens is the shortest activation segment packed for the tiles:
// the smallest of the per-type thresholds in tileMinTokens (packing does
// not know which matrix will use it).
const packMinTokens = 8

var (
	// tileKernels holds the tile kernel per weight type where the CPU has
	// one (set up by the architecture's init).
	tileKernels [gguf.TypeCount]tileKernel
	// tileMinTokens is, per type, the fewest tokens for which its tile
	// kernel beats the rows kernels (a tile always computes 16 tokens and
	// unpacks its rows once per call). Measured with BenchmarkPrefill
	// (4096x4096, 2 threads): Q4_K tiles 1.14 ms against rows 1.36 ms at 8
	// tokens; Q6_K, whose unpacking costs more, 2.18 against 1.28 ms at 8
	// and 2.16 against 2.39 ms at 16.
	tileMinTokens = [gguf.TypeCount]int{gguf.TypeQ4_K: 8, gguf.TypeQ6_K: 16}
	// tilesVariant switches the tile path (isa "amx").
	tilesVariant = newFnVariant("amx")
)

// SetTiles switches the AMX tile path for prompt processing on or off
// (on by default where the CPU has AMX). Off, every product uses the rows
// kernels, which reproduce ggml's vec_dot bit for bit. Not safe to call
// while kernels run.
func SetTiles(on bool) { tilesVariant.enable = on }

// TilesEnabled reports whether products take the tile path where they can
// (SetTiles; true by default).
func TilesEnabled() bool { return tilesVariant.enable }

// TilesAvailable reports whether this CPU and kernel run the tile path.
func TilesAvailable() bool { return tilesVariant.available }

// blockRows holds, per type, a rows kernel in the tile kernels'
// arithmetic (one rounding per block and token; set up by the
// architecture's init): the batch-invariant mode computes the products too
// small for the tiles with it.
var blockRows [gguf.TypeCount]rowsKernel

// tileArithmetic reports whether every product of w, whatever its token
// count, runs in the tile kernels' arithmetic: in the batch-invariant mode
// where this CPU has both the tiles and blockRows for w's type (the tiles
// take the products of tileMinTokens or more, blockRows the others, with
// the same bits per row). Elsewhere the batch-invariant mode keeps w on the
// vec_dot rows kernels.
func tileArithmetic(w *Matrix) bool {
	return batchInvariant && tilesVariant.on() && tileKernels[w.Type] != nil && blockRows[w.Type] != nil && w.Cols%256 == 0
}

// tileKernelFor returns the tile kernel for a product of w with n tokens,
// or nil when the rows kernels take it. In the batch-invariant mode only
// where tileArithmetic holds: the tiles round per block, the vec_dot rows
// kernels per lane.
func tileKernelFor(w *Matrix, n int) tileKernel {
	if (batchInvariant && !tileArithmetic(w)) || !tilesVariant.on() || n < max(packMinTokens, tileMinTokens[w.Type]) || w.Cols%256 != 0 {
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

// Segments: the rows of an Activations may be consecutive segments that
// multiply different matrices (the tokens routed to each expert of a MoE
// layer, see SetSegments). Quantization covers all rows at once; the tiles
// are packed per segment (a segment's first token starts a group), and a
// product takes one segment.

// segment returns the bounds of segment seg of x (the whole of x when it
// has no segments).
func (x *Activations) segment(seg int) (lo, hi int) {
	if x.segs == nil {
		return 0, x.N
	}
	return x.segs[seg], x.segs[seg+1]
}

// numSegments is the number of segments of x.
func (x *Activations) numSegments() int {
	if x.segs == nil {
		return 1
	}
	return len(x.segs) - 1
}

// tilesOf packs x's Q8_K rows for the tile kernels, every segment of at
// least packMinTokens rows (shared out over p), on first use, and returns
// the packed bytes.
func (x *Activations) tilesOf(p *Pool) []byte {
	nb := x.Cols / 256
	if x.tilesValid {
		return x.tiles
	}
	q := x.quantized(p, gguf.TypeQ8_K)
	ns := x.numSegments()
	x.tileOff = x.tileOff[:0]
	size := 0
	for s := 0; s < ns; s++ {
		lo, hi := x.segment(s)
		x.tileOff = append(x.tileOff, size)
		if hi-lo >= packMinTokens {
			size += packedQ8KBytes(hi-lo, nb)
		}
	}
	x.tileOff = append(x.tileOff, size)
	if cap(x.tiles) < size {
		x.tiles = make([]byte, size)
	}
	x.tiles = x.tiles[:size]
	pt := &p.pt
	*pt = packTask{x: x, q: q, qRow: len(q) / x.N, nb: nb}
	p.Run(size/(nb*amxPackBytes), 1, pt)
	*pt = packTask{}
	x.tilesValid = true
	return x.tiles
}

// packTask packs token groups [lo, hi) of all packed segments, counted
// in packing order.
type packTask struct {
	x        *Activations
	q        []byte
	qRow, nb int
}

func (t *packTask) Do(lo, hi, _ int) {
	x, gb := t.x, t.nb*amxPackBytes
	s := 0
	for g := lo; g < hi; g++ {
		for x.tileOff[s+1] <= g*gb {
			s++
		}
		a, b := x.segment(s)
		sg := (g*gb - x.tileOff[s]) / gb
		packQ8KGroup(x.tiles[g*gb:(g+1)*gb], t.q[a*t.qRow:], t.qRow, b-a, t.nb, sg)
	}
}

// tileTask is a tile product's work: row groups of 16 shared out over the
// pool's workers.
type tileTask struct {
	out    []float32
	w      *Matrix
	packed []byte
	n, nb  int
	gpc    int // token groups per kernel call, even
	kernel tileKernel
	ws     []tileScratch // per worker
}

// tileScratch is one worker's scratch for the tile kernels.
type tileScratch struct {
	scratch []byte
	acc     []float32
}

// tileGroupBytes is how many bytes of packed tokens one kernel call takes
// at most: they stay in L2 while the call's row groups pass over them.
const tileGroupBytes = 1 << 20

// tileGPC is the number of token groups (even) one kernel call takes for
// rows of nb blocks.
func tileGPC(nb int) int { return max(2, tileGroupBytes/(nb*amxPackBytes)&^1) }

// tileSetup sizes every worker's tile scratch for rows of nb blocks and
// returns the token groups per kernel call.
func (p *Pool) tileSetup(nb int) int {
	tt := &p.tt
	gpc := tileGPC(nb)
	for len(tt.ws) < p.threads {
		tt.ws = append(tt.ws, tileScratch{scratch: make([]byte, amxScratch)})
	}
	for i := range tt.ws {
		if len(tt.ws[i].acc) < 2*gpc*256 {
			tt.ws[i].acc = make([]float32, 2*gpc*256)
		}
	}
	return gpc
}

// tileMatMul is MatMul on the tile kernel k.
func (p *Pool) tileMatMul(out []float32, w *Matrix, x *Activations, k tileKernel) {
	tt := &p.tt
	tt.out, tt.w, tt.n, tt.nb, tt.kernel = out[:x.N*w.Rows], w, x.N, x.Cols/256, k
	tt.gpc = p.tileSetup(tt.nb)
	tt.packed = x.tilesOf(p)[:packedQ8KBytes(x.N, tt.nb)]
	p.Run((w.Rows+amxTileRows-1)/amxTileRows, 1, tt)
	tt.out, tt.w, tt.packed, tt.kernel = nil, nil, nil, nil
}

func (tt *tileTask) Do(lo, hi, worker int) {
	r0, r1 := lo*amxTileRows, min(hi*amxTileRows, tt.w.Rows)
	tileRows(&tt.ws[worker], tt.gpc, tt.kernel, tt.out[r0:], tt.w.Rows, tt.w, r0, r1, tt.packed, tt.n, tt.nb)
}

// tileRows computes rows [lo, hi) of w times the n tokens packed in
// packed, with kernel k and scratch s, into out[t*ldo+r-lo].
func tileRows(s *tileScratch, gpc int, k tileKernel, out []float32, ldo int, w *Matrix, lo, hi int, packed []byte, n, nb int) {
	rb := w.RowBytes
	gb := nb * amxPackBytes
	groups := tileGroups(n)
	// Rows in chunks that stay in L2 while every token group passes.
	step := max(1, rowBlockBytes/(amxTileRows*rb)) * amxTileRows
	for c0 := lo; c0 < hi; c0 += step {
		c1 := min(c0+step, hi)
		for g0 := 0; g0 < groups; g0 += gpc {
			ng := min(gpc, groups-g0)
			b := packed[g0*gb : (g0+ng)*gb]
			for r0 := c0; r0 < c1; r0 += amxTileRows {
				rows := min(amxTileRows, c1-r0)
				k(s.acc, w.Data[r0*rb:], rb, rows, b, gb, ng, nb, s.scratch)
				res := s.acc[ng*256:]
				for t := g0 * amxTileTokens; t < min(n, (g0+ng)*amxTileTokens); t++ {
					i := (t - g0*amxTileTokens) * amxTileRows
					o := out[t*ldo+r0-lo:]
					copy(o[:rows], res[i:i+rows])
				}
			}
		}
	}
}

// Prepare makes x ready for RowsProduct with m from several goroutines
// at once: its rows quantized to m's companion type and, where the tile
// path takes a segment's product, packed for the tiles (the work shared
// out over p). Like MatMul, it must not run concurrently with other uses
// of p.
func (p *Pool) Prepare(x *Activations, m *Matrix) {
	f := m.format
	if f.VecDot == gguf.TypeF32 || f.Dot == nil || x.N == 0 {
		return
	}
	x.quantized(p, f.VecDot)
	if tileKernelFor(m, math.MaxInt) != nil && f.VecDot == gguf.TypeQ8_K {
		p.tileSetup(x.Cols / 256)
		x.tilesOf(p)
	}
}

// RowsProduct sets out[t*ldo+r-lo] = row r of m times row t of segment
// seg of x (see Activations.SetSegments; seg 0 without segments) for lo <=
// r < hi and every row t of the segment, on the calling goroutine, with
// the kernel MatMul would use (the tiles, the rows kernels, or the f32
// dot); with the rows kernels the result is Format.Dot's, bit for bit.
// worker (0 to p.Threads()-1) selects p's scratch: a Task's Do passes its
// own. x must have been prepared for m by Prepare; distinct workers may
// run RowsProduct on the same x at once.
func (p *Pool) RowsProduct(worker int, out []float32, ldo int, m *Matrix, lo, hi int, x *Activations, seg int) {
	f := m.format
	s0, s1 := x.segment(seg)
	n := s1 - s0
	if n == 0 || lo >= hi {
		return
	}
	if x.Cols != m.Cols {
		panic(fmt.Sprintf("kernels: RowsProduct of %d-wide rows by a %dx%d matrix", x.Cols, m.Rows, m.Cols))
	}
	if f.VecDot == gguf.TypeF32 || f.Dot == nil {
		for r := lo; r < hi; r++ {
			row := m.Row(r)
			for t := 0; t < n; t++ {
				out[t*ldo+r-lo] = f.DotF32(row, x.X[(s0+t)*x.Cols:(s0+t+1)*x.Cols])
			}
		}
		return
	}
	if !x.valid[f.VecDot] {
		panic(fmt.Sprintf("kernels: RowsProduct on activations not prepared for %v", m.Type))
	}
	if k := tileKernelFor(m, n); k != nil && f.VecDot == gguf.TypeQ8_K && x.tilesValid {
		nb := x.Cols / 256
		tileRows(&p.tt.ws[worker], tileGPC(nb), k, out, ldo, m, lo, hi, x.tiles[x.tileOff[seg]:x.tileOff[seg+1]], n, nb)
		return
	}
	rb, _ := f.VecDot.RowBytes(x.Cols)
	m.productRows(out, ldo, lo, hi, x.quant[f.VecDot][s0*rb:s1*rb], rb, n)
}

// productRows is dotRows for the rows kernels' part of a product (MatMul,
// RowsProduct): in the tile kernels' arithmetic (blockRows) where
// tileArithmetic holds.
func (m *Matrix) productRows(out []float32, ldo, lo, hi int, a []byte, lda, nt int) {
	if !tileArithmetic(m) {
		m.dotRows(out, ldo, lo, hi, a, lda, nt)
		return
	}
	w, k := m.Data[lo*m.RowBytes:hi*m.RowBytes], blockRows[m.Type]
	for t0 := 0; t0 < nt; t0 += TileTokens {
		k(out[t0*ldo:], ldo, w, hi-lo, a[t0*lda:], lda, min(TileTokens, nt-t0), m.Cols)
	}
}
