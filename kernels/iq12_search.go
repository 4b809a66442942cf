package kernels

import (
	"math"
	"sync"
)

// Quantizer search tables of the IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S and IQ1_M
// formats, the Go form of what ggml's iq2xs_init_impl (ggml-quants.c)
// builds once per grid. A group of 8 weights is first rounded to a point of
// the 4^8 "level" lattice (2 bits per weight, level l meaning the value
// 2l+1); when that point is not in the format's grid, the quantizer tries
// the grid points nearest to it. The tables are derived from the dequantizer
// grids (iq2_grids.go, iq1_grids.go), built on first use and read-only
// afterwards.

// iq12MapSize is ggml's kmap_size, the number of lattice indices mapped:
// enough for every index with levels 0..2 (at most 0xaaaa), the only ones
// the quantizers look up.
const iq12MapSize = 43692

// iq12Search is one grid's search tables (ggml's kgrid_q2xs, kmap_q2xs and
// kneighbors_q2xs).
type iq12Search struct {
	// grid holds every grid point in level coordinates: byte j of entry i
	// is 2l+1 for the level l of weight j (ggml's kgrid_q2xs).
	grid [][8]int8
	// gridMap maps a lattice index (2 bits per weight, weight j in bits
	// 2j..2j+1) to its grid index, or, for a point not in the grid, to
	// -(offset+1) where neighbours[offset] is the length n of its neighbour
	// list and neighbours[offset+1:offset+1+n] the list.
	gridMap []int32
	// neighbours holds the neighbour lists: for a lattice point, the grid
	// points at the nwant smallest distinct squared distances, ordered by
	// distance then grid index.
	neighbours []uint16
}

// neighboursOf returns the neighbour list of the lattice point u, which is
// not in the grid.
func (t *iq12Search) neighboursOf(u int) []uint16 {
	off := int(-t.gridMap[u] - 1)
	n := int(t.neighbours[off])
	return t.neighbours[off+1 : off+1+n]
}

// lookup returns the grid index of lattice point u, or -1 when u is not on
// the grid (or outside the lattice, which only garbage input reaches).
func (t *iq12Search) lookup(u int) int {
	if u < 0 || u >= len(t.gridMap) || t.gridMap[u] < 0 {
		return -1
	}
	return int(t.gridMap[u])
}

// The search tables, one per grid (IQ1_S and IQ1_M share theirs, as in
// ggml). nwant is ggml's: 2 for IQ2_XXS/IQ2_XS, 1 for IQ2_S, 3 for IQ1.
var (
	iq2xxsSearch = sync.OnceValue(func() *iq12Search {
		return newIQ12Search(iq2xxsGrid[:], [3]uint8{0x08, 0x19, 0x2b}, 2)
	})
	iq2xsSearch = sync.OnceValue(func() *iq12Search {
		return newIQ12Search(iq2xsGrid[:], [3]uint8{0x08, 0x19, 0x2b}, 2)
	})
	iq2sSearch = sync.OnceValue(func() *iq12Search {
		return newIQ12Search(iq2sGrid[:], [3]uint8{0x08, 0x19, 0x2b}, 1)
	})
	iq1Search = sync.OnceValue(func() *iq12Search {
		return newIQ12Search(iq1sGrid[:], [3]uint8{0xff, 0x00, 0x01}, 3)
	})
)

// newIQ12Search builds the search tables of a dequantizer grid whose bytes
// take the values levels[0..2] (levels 0, 1, 2). ggml builds the same grid
// from its own packed copy (kgrid_2bit_256 etc. in iq2xs_init_impl), whose
// entries are the level-lattice indices of the dequantizer grid in the same
// order.
func newIQ12Search(dgrid []uint64, levels [3]uint8, nwant int) *iq12Search {
	t := &iq12Search{grid: make([][8]int8, len(dgrid)), gridMap: make([]int32, iq12MapSize)}
	for i := range t.gridMap {
		t.gridMap[i] = -1
	}
	for i, g := range dgrid {
		u := 0
		for j := range 8 {
			b := uint8(g >> (8 * j))
			l := 0
			for l < 2 && levels[l] != b {
				l++
			}
			t.grid[i][j] = int8(2*l + 1)
			u |= l << (2 * j)
		}
		t.gridMap[u] = int32(i)
	}

	// The squared distance splits into two halves of 4 weights: a lattice
	// half (4 levels 0..3 in 8 bits) against a grid half. dist4[a<<8|b] is
	// the distance between lattice half a and lattice half b.
	dist4 := make([]uint8, 1<<16)
	for a := range 256 {
		for b := range 256 {
			d := 0
			for k := range 4 {
				e := 2 * ((a >> (2 * k) & 3) - (b >> (2 * k) & 3))
				d += e * e
			}
			dist4[a<<8|b] = uint8(d)
		}
	}
	lo := make([]uint8, len(dgrid))
	hi := make([]uint8, len(dgrid))
	for i, p := range t.grid {
		for k := range 4 {
			lo[i] |= uint8((p[k]-1)/2) << (2 * k)
			hi[i] |= uint8((p[k+4]-1)/2) << (2 * k)
		}
	}

	// For each lattice point off the grid: the grid points at the nwant
	// smallest distinct distances, sorted by (distance, index) as ggml's
	// qsort with iq2_compare_func does. Distances are at most 8*36, so a
	// counting sort over the distance does it in two passes.
	const maxDist = 8 * 36
	d2 := make([]uint16, len(dgrid))
	var count [maxDist + 1]int
	for u := range iq12MapSize {
		if t.gridMap[u] >= 0 {
			continue
		}
		dlo := dist4[(u&0xff)<<8 : (u&0xff)<<8+256]
		dhi := dist4[(u>>8)<<8 : (u>>8)<<8+256]
		count = [maxDist + 1]int{}
		for j := range d2 {
			d := uint16(dlo[lo[j]]) + uint16(dhi[hi[j]])
			d2[j] = d
			count[d]++
		}
		// Keep the nwant smallest distinct distances; count[] becomes the
		// start of each kept distance in the list.
		n, distinct, limit := 0, 0, uint16(0)
		for d := 0; d <= maxDist && distinct < nwant; d++ {
			if count[d] == 0 {
				continue
			}
			c := count[d]
			count[d] = n
			n += c
			distinct++
			limit = uint16(d)
		}
		off := len(t.neighbours)
		t.gridMap[u] = -int32(off + 1)
		t.neighbours = append(t.neighbours, make([]uint16, n+1)...)
		list := t.neighbours[off+1:]
		t.neighbours[off] = uint16(n)
		for j, d := range d2 {
			if d <= limit {
				list[count[d]] = uint16(j)
				count[d]++
			}
		}
	}
	return t
}

// iq12NearestInt is ggml's nearest_int: round to nearest, ties to even, by
// adding 1.5*2^23 (valid for |f| <= 2^22; other inputs give the same garbage
// as ggml, never a panic).
func iq12NearestInt(f float32) int {
	v := f + 12582912
	return int(int32(math.Float32bits(v)&0x007fffff) - 0x00400000)
}

// iq12GroupMaxEps is ggml's GROUP_MAX_EPS.
const iq12GroupMaxEps = 1e-15

// iq2MakeQPQuants is ggml's make_qp_quants (ggml-quants.c): quantizes the n
// non-negative values x to levels 0..nmax with a weighted least-squares
// scale, writing the levels to L (stored as ggml's uint8_t) and returning
// the scale. Every product that feeds a sum is rounded on its own (no FMA),
// as in ggml.
func iq2MakeQPQuants(nmax int, x []float32, L []int8, w []float32) float32 {
	n := len(x)
	w = w[:n]
	L = L[:n]
	var maxv float32
	for _, v := range x {
		maxv = iq12Max(maxv, v)
	}
	if maxv < iq12GroupMaxEps {
		clear(L)
		return 0
	}
	fmax := float32(nmax)
	iscale := fmax / maxv
	for i, v := range x {
		L[i] = int8(iq12NearestInt(iscale * v))
	}
	scale := 1 / iscale
	var bestMSE float32
	for i, v := range x {
		diff := v - float32(scale*float32(uint8(L[i])))
		bestMSE += float32(w[i] * diff * diff)
	}
	for is := -4; is <= 4; is++ {
		if is == 0 {
			continue
		}
		iscaleIs := (float32(0.1*float32(is)) + fmax) / maxv
		scaleIs := 1 / iscaleIs
		var mse float32
		for i, v := range x {
			l := min(nmax, iq12NearestInt(iscaleIs*v))
			diff := v - float32(scaleIs*float32(l))
			mse += float32(w[i] * diff * diff)
		}
		if mse < bestMSE {
			bestMSE = mse
			iscale = iscaleIs
		}
	}
	var sumlx, suml2 float32
	for i, v := range x {
		l := min(nmax, iq12NearestInt(iscale*v))
		L[i] = int8(l)
		fl := float32(l)
		sumlx += float32(w[i] * v * fl)
		suml2 += float32(w[i] * fl * fl)
	}
	for range 5 {
		changed := 0
		for i, v := range x {
			wi := w[i]
			li := float32(uint8(L[i]))
			slx := sumlx - float32(wi*v*li)
			sl2 := suml2 - float32(wi*li*li)
			if slx > 0 && sl2 > 0 {
				newL := min(nmax, iq12NearestInt(v*sl2/slx))
				if newL != int(uint8(L[i])) {
					fl := float32(newL)
					slx += float32(wi * v * fl)
					sl2 += float32(wi * fl * fl)
					if slx*slx*suml2 > sumlx*sumlx*sl2 {
						L[i] = int8(newL)
						sumlx, suml2 = slx, sl2
						changed++
					}
				}
			}
		}
		if changed == 0 {
			break
		}
	}
	if suml2 > 0 {
		return sumlx / suml2
	}
	return 0
}

// iq12Max is C's MAX(a, b) macro for floats: a > b ? a : b (unlike Go's max,
// NaN handling follows the comparison).
func iq12Max(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// iq2BestNeighbour is ggml's iq2_find_best_neighbour: among the neighbours
// of a lattice point, the grid point closest to xval/scale in the weighted
// squared distance. It writes the point's levels to L and returns its grid
// index (the first neighbour when no distance compares, which only NaN
// input reaches and where ggml aborts).
func iq2BestNeighbour(t *iq12Search, neighbours []uint16, xval, weight []float32, scale float32, L []int8) int {
	xval, weight, L = xval[:8], weight[:8], L[:8]
	best := float32(math.MaxFloat32)
	index := int(neighbours[0])
	for _, nb := range neighbours {
		pg := &t.grid[nb]
		var d2 float32
		for i := range 8 {
			diff := float32(scale*float32(pg[i])) - xval[i]
			d2 += float32(weight[i] * diff * diff)
		}
		if d2 < best {
			best = d2
			index = int(nb)
		}
	}
	pg := &t.grid[index]
	for i := range 8 {
		L[i] = (pg[i] - 1) / 2
	}
	return index
}
