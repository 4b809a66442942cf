package kernels

import (
	"math"
	"sync"
)

// Quantization support shared by IQ3_XXS and IQ3_S (ggml-quants.c:
// iq3xs_init_impl, iq3_find_best_neighbour and the scale search of
// quantize_row_iq3_xxs_impl / quantize_row_iq3_s_impl).
//
// Both formats code groups of 4 magnitudes, each one of 8 levels l = 0..7,
// as an index into a grid holding a subset of the 8^4 = 4096 lattice
// points. The quantizer rounds a group to the lattice; when that point is
// not on the grid it picks the best of the point's precomputed grid
// neighbours.

// iq3Lattice is ggml's iq3_data entry for one grid, built once.
type iq3Lattice struct {
	// pos[k] holds the odd values 2l+1 (1..15) of grid point k.
	pos [][4]int8
	// index[u] is the grid index of the lattice point
	// u = l0 | l1<<3 | l2<<6 | l3<<9, or -1 when u is not on the grid.
	index [4096]int16
	// The grid neighbours of an off-grid point u are
	// nbrs[nbrStart[u]:nbrStart[u+1]]: every grid point whose squared
	// distance to u is among the nwant smallest distances, nearest first,
	// ties by grid index (ggml's qsort on (distance, index)).
	nbrStart [4097]int32
	nbrs     []uint16
}

// iq3XXSLattice and iq3SLattice are built from the dequantization grids on
// first use: IQ3_XXS stores magnitude 8l+4 (62 for l = 7), IQ3_S 2l+1.
var (
	iq3XXSLattice = sync.OnceValue(func() *iq3Lattice {
		return newIQ3Lattice(iq3xxsGrid[:], func(b uint8) int { return int(b >> 3) }, 2)
	})
	iq3SLattice = sync.OnceValue(func() *iq3Lattice {
		return newIQ3Lattice(iq3sGrid[:], func(b uint8) int { return int(b >> 1) }, 3)
	})
)

// newIQ3Lattice builds the lattice tables of grid, whose bytes level maps
// back to l; nwant is how many distinct distances the neighbour lists span
// (ggml: 2 for the 256-point grid, 3 for the 512-point one).
func newIQ3Lattice(grid []uint32, level func(uint8) int, nwant int) *iq3Lattice {
	lat := &iq3Lattice{pos: make([][4]int8, len(grid))}
	for u := range lat.index {
		lat.index[u] = -1
	}
	for k, g := range grid {
		u := 0
		for i := 0; i < 4; i++ {
			l := level(uint8(g >> (8 * i)))
			lat.pos[k][i] = int8(2*l + 1)
			u |= l << (3 * i)
		}
		lat.index[u] = int16(k)
	}
	d2 := make([]int, len(grid))
	for u := range lat.index {
		lat.nbrStart[u] = int32(len(lat.nbrs))
		if lat.index[u] >= 0 {
			continue
		}
		for j, pg := range lat.pos {
			d := 0
			for i := 0; i < 4; i++ {
				diff := int(pg[i]) - (2*(u>>(3*i)&7) + 1)
				d += diff * diff
			}
			d2[j] = d
		}
		// Walk the nwant smallest distinct distances in increasing order.
		prev := -1
		for range nwant {
			next := math.MaxInt
			for _, d := range d2 {
				if d > prev && d < next {
					next = d
				}
			}
			if next == math.MaxInt {
				break
			}
			for j, d := range d2 {
				if d == next {
					lat.nbrs = append(lat.nbrs, uint16(j))
				}
			}
			prev = next
		}
	}
	lat.nbrStart[4096] = int32(len(lat.nbrs))
	return lat
}

// bestNeighbour is iq3_find_best_neighbour: of the grid neighbours of the
// off-grid point u, the one minimising Σ w_i·(scale·q_i - x_i)². It writes
// the levels of that point to L and returns its grid index. When no
// distance compares (NaN input; ggml asserts) it takes the first neighbour.
func (lat *iq3Lattice) bestNeighbour(u int, xval, waux []float32, scale float32, L []int8) int {
	xval, waux, L = xval[:4], waux[:4], L[:4]
	best := float32(math.MaxFloat32)
	nb := lat.nbrs[lat.nbrStart[u]:lat.nbrStart[u+1]]
	gi := int(nb[0])
	for _, j := range nb {
		pg := &lat.pos[j]
		var d2 float32
		for i := 0; i < 4; i++ {
			diff := float32(scale*float32(pg[i])) - xval[i]
			d2 += float32(waux[i] * diff * diff)
		}
		if d2 < best {
			best, gi = d2, int(j)
		}
	}
	for i := range L {
		L[i] = (lat.pos[gi][i] - 1) / 2
	}
	return gi
}

// iq3LevelIndex packs the 4 levels of a group into a lattice point.
func iq3LevelIndex(L []int8) int {
	L = L[:4]
	return int(L[0]) | int(L[1])<<3 | int(L[2])<<6 | int(L[3])<<9
}

// gridIndex returns the grid index of the group L, which the search
// always leaves on the grid (ggml aborts otherwise); 0 guards bad input.
func (lat *iq3Lattice) gridIndex(L []int8) int {
	if gi := lat.index[iq3LevelIndex(L)]; gi >= 0 {
		return int(gi)
	}
	return 0
}

// iq3RoundGroup rounds the 4 magnitudes xval·id to lattice levels
// (l = round((id·x - 1)/2) clamped to 0..7) into L and returns the point.
func iq3RoundGroup(xval []float32, id float32, L []int8) int {
	xval, L = xval[:4], L[:4]
	u := 0
	for i, x := range xval {
		l := min(max(iq34NearestInt(0.5*(float32(id*x)-1)), 0), 7)
		L[i] = int8(l)
		u |= int(l) << (3 * i)
	}
	return u
}

// iq3Sums returns Σ w·x·q and Σ w·q² for the levels L (q = 2l+1) in
// ggml's order.
func iq3Sums(weight, xval *[32]float32, L *[32]int8) (sumqx, sumq2 float32) {
	for i := range L {
		w := weight[i]
		q := float32(2*L[i] + 1)
		sumqx += float32(w * xval[i] * q)
		sumq2 += float32(w * q * q)
	}
	return sumqx, sumq2
}

// iq3Search is the scale search of both IQ3 quantizers for one
// 32-element sub-block of magnitudes xval (largest vmax): 2·steps+1 trial
// scales, each group rounded onto the grid, the best by weighted error
// kept in L; then the groups that were off the grid (IQ3_XXS) or all
// groups (IQ3_S, fixAll) are rounded again with the chosen scale, which is
// refitted. onGrid0 is ggml's initial is_on_grid (true for IQ3_XXS, false
// for IQ3_S), which matters when no trial scale improves on zero.
func (lat *iq3Lattice) search(xval, weight, waux *[32]float32, L *[32]int8, vmax float32, steps int, onGrid0, fixAll bool) float32 {
	var (
		best          float32
		onGrid, onAux [8]bool
		laux          [32]int8
	)
	scale := vmax / 15
	for k := range onGrid {
		onGrid[k] = onGrid0
	}
	for is := -steps; is <= steps; is++ {
		id := (15 + float32(float32(is)*0.2)) / vmax
		thisScale := 1 / id
		for k := 0; k < 8; k++ {
			u := iq3RoundGroup(xval[4*k:], id, laux[4*k:])
			onAux[k] = lat.index[u] >= 0
			if !onAux[k] {
				lat.bestNeighbour(u, xval[4*k:], waux[4*k:], thisScale, laux[4*k:])
			}
		}
		sumqx, sumq2 := iq3Sums(weight, xval, &laux)
		if sumq2 > 0 && float32(sumqx*sumqx) > float32(best*sumq2) {
			scale = sumqx / sumq2
			best = scale * sumqx
			*L = laux
			onGrid = onAux
		}
	}
	off := false
	for _, on := range onGrid {
		off = off || !on
	}
	if off && scale > 0 {
		id := 1 / scale
		for k := 0; k < 8; k++ {
			if !fixAll && onGrid[k] {
				continue
			}
			u := iq3RoundGroup(xval[4*k:], id, L[4*k:])
			if lat.index[u] < 0 {
				lat.bestNeighbour(u, xval[4*k:], waux[4*k:], scale, L[4*k:])
			}
		}
		if sumqx, sumq2 := iq3Sums(weight, xval, L); sumq2 > 0 {
			scale = sumqx / sumq2
		}
	}
	return scale
}

// iq3Weights fills the importance weights of a 32-element sub-block xb
// (xb², or qw·sqrt(sigma2 + xb²) with an importance matrix) and their
// square roots.
func iq3Weights(weight, waux *[32]float32, xb, qw []float32, sigma2 float32) {
	xb = xb[:32]
	if qw == nil {
		for i, x := range xb {
			weight[i] = x * x
		}
	} else {
		qw = qw[:32]
		for i, x := range xb {
			weight[i] = qw[i] * iq34Sqrt(sigma2+float32(x*x))
		}
	}
	for i, w := range weight {
		waux[i] = iq34Sqrt(w)
	}
}

// iq3Sigma2 is 2·Σx²/256 over a super-block, in ggml's order.
func iq3Sigma2(x []float32) float32 {
	var s float32
	for _, v := range x[:256] {
		s += float32(v * v)
	}
	return 2 * s / 256
}

// iq3ScaleNibble encodes a sub-block scale relative to the super-block
// step: round((id·s - 1)/2) clamped to 0..15.
func iq3ScaleNibble(id, s float32) uint32 {
	return uint32(min(max(iq34NearestInt(0.5*(float32(id*s)-1)), 0), 15))
}

// iq3Max is ggml's MAX(a, b) on floats: a > b ? a : b (so NaN in a yields b).
func iq3Max(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}
