package kernels

import "github.com/inference-x/inference-x/internal/ggmlfp"

// The attention products over an F16 KV cache, in ggml's lane order (see
// model/ggmlmath.go): the f32 operand is already rounded to F16 by the
// caller where ggml converts it, so every product is exact and the lanes
// only add.

// dotF16Lanes16Go is DotF16Lanes16 in Go.
func dotF16Lanes16Go(q []float32, k []uint16) float32 {
	n := len(q) &^ 15
	k = k[:n]
	var acc [16]float32
	for i := 0; i < n; i += 16 {
		for l := range acc {
			acc[l] += float32(q[i+l] * FP16ToF32(k[i+l]))
		}
	}
	return ggmlfp.Reduce16(&acc)
}

// dotF16Lanes64Go is DotF16Lanes64 in Go.
func dotF16Lanes64Go(q []float32, k []uint16) float32 {
	n := len(q) &^ 63
	k = k[:n]
	var acc [4][16]float32
	for i := 0; i < n; i += 64 {
		for j := range acc {
			for l := range acc[j] {
				acc[j][l] += float32(q[i+16*j+l] * FP16ToF32(k[i+16*j+l]))
			}
		}
	}
	for l := range acc[0] {
		acc[0][l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
	}
	return ggmlfp.Reduce16(&acc[0])
}

// axpyF16Go is AxpyF16 in Go.
func axpyF16Go(acc []float32, v []uint16, p float32) {
	v = v[:len(acc)]
	for d, x := range v {
		acc[d] += float32(p * FP16ToF32(x))
	}
}

// laneSumGo is LaneSum in Go.
func laneSumGo(out, acc []float32, vd, width int) {
	var r [16]float32
	for d := range out {
		if width == 16 {
			for l := range r {
				r[l] = acc[l*vd+d]
			}
		} else {
			for l := range r {
				r[l] = (acc[l*vd+d] + acc[(32+l)*vd+d]) + (acc[(16+l)*vd+d] + acc[(48+l)*vd+d])
			}
		}
		out[d] = ggmlfp.Reduce16(&r)
	}
}

// expBlock16Go is ExpBlock16 in Go.
func expBlock16Go(s []float32, mx float32) float32 {
	var blk [16]float32
	for j := range s[:min(len(s), 16)] {
		e := ggmlfp.VExpf(s[j] - mx)
		s[j] = e
		blk[j] = e
	}
	return ggmlfp.Reduce16(&blk)
}

// swigluGo is SwigluBlocks in Go.
func swigluGo(gate, up []float32) {
	n := len(gate) &^ 15
	up = up[:n]
	for i := range up {
		gate[i] = ggmlfp.VSilu(gate[i]) * up[i]
	}
}

// dotF16Lanes16RowsGo is DotF16Lanes16Rows in Go.
func dotF16Lanes16RowsGo(out, q []float32, k []uint16, kstride int) {
	for j := range out {
		out[j] = dotF16Lanes16Go(q, k[j*kstride:])
	}
}

// axpyF16RowsGo is AxpyF16Rows in Go.
func axpyF16RowsGo(acc []float32, vd, width int, v []uint16, vstride int, p []float32) {
	for j, pj := range p {
		l := j & (width - 1)
		axpyF16Go(acc[l*vd:(l+1)*vd], v[j*vstride:], pj)
	}
}
