package kernels

import "github.com/inference-x/inference-x/gguf"

// Q2_K (ggml-common.h block_q2_K), 84 bytes per 256 weights:
//
//	scales  16 bytes: per 16-element group j, 4-bit scale (low nibble)
//	        and 4-bit min (high nibble)
//	qs      64 bytes: 2-bit levels; in 128-element half h, bits 2k..2k+1
//	        of byte l of qs[32h:] belong to element 128h+32k+l
//	d, dmin fp16 super-block scales for the group scales and mins
//
// Weight = d*scale_j*q - dmin*min_j.
const q2KBlockBytes = 84

func init() {
	register(&Format{
		Type:       gguf.TypeQ2_K,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeQ2K,
		Quantize:   quantizeQ2K,
		Dot:        dotQ2K,
		DotF32:     dotF32Q2K,
	})
}

func dequantizeQ2K(dst []float32, src []byte) {
	nb := len(dst) / kqBlock
	for i := 0; i < nb; i++ {
		b := (*[q2KBlockBytes]byte)(src[i*q2KBlockBytes:])
		y := (*[kqBlock]float32)(dst[i*kqBlock:])
		d, dmin := kqHalf(b[:], 80), kqHalf(b[:], 82)
		var dl, ml [16]float32
		for j, sc := range b[:16] {
			dl[j], ml[j] = d*float32(sc&0xF), dmin*float32(sc>>4)
		}
		for h := 0; h < 2; h++ {
			for g := 0; g < 2; g++ {
				// Rows k=0..3 of this half use scales 8h+2k+g.
				j := 8*h + g
				q2KGroupDequant((*[16]byte)(b[16+32*h+16*g:]), (*[112]float32)(y[128*h+16*g:]),
					&[4]float32{dl[j], dl[j+2], dl[j+4], dl[j+6]}, &[4]float32{ml[j], ml[j+2], ml[j+4], ml[j+6]})
			}
		}
	}
}

// q2KGroupDequant decodes the four 2-bit rows of the 16 bytes q into
// y[0:16], y[32:48], y[64:80], y[96:112] as d[k]*q-m[k].
func q2KGroupDequant(q *[16]byte, y *[112]float32, d, m *[4]float32) {
	d0, d1, d2, d3 := d[0], d[1], d[2], d[3]
	m0, m1, m2, m3 := m[0], m[1], m[2], m[3]
	for l, v := range q {
		yl := (*[97]float32)(y[l:])
		yl[0] = float32(d0*kqLevel[v&3]) - m0
		yl[32] = float32(d1*kqLevel[v>>2&3]) - m1
		yl[64] = float32(d2*kqLevel[v>>4&3]) - m2
		yl[96] = float32(d3*kqLevel[v>>6]) - m3
	}
}

// quantizeQ2K is quantize_row_q2_K_ref (make_qkx2_quants per 16 weights,
// mean-absolute-error fit), or quantize_row_q2_K_impl with an importance
// matrix (make_qkx3_quants with weights qw*sqrt(sigma2+x²), then
// make_qp_quants for the scales and mins).
func quantizeQ2K(dst []byte, src []float32, imatrix []float32) {
	nb := len(src) / kqBlock
	var L [kqBlock]uint8
	var aux [16]uint8
	var weights [16]float32
	var scales, mins [16]float32
	for i := 0; i < nb; i++ {
		b := (*[q2KBlockBytes]byte)(dst[i*q2KBlockBytes:])
		x := (*[kqBlock]float32)(src[i*kqBlock:])
		sb := (*[16]byte)(b[0:])
		if imatrix == nil {
			var maxScale, maxMin float32
			for j := 0; j < 16; j++ {
				xs := x[16*j : 16*j+16]
				for l, v := range xs {
					weights[l] = abs32(v)
				}
				scales[j], mins[j] = kqMakeQKXQuants(3, xs, weights[:], L[16*j:16*j+16], aux[:], -0.5, 0.1, 15, true)
				if scales[j] > maxScale {
					maxScale = scales[j]
				}
				if mins[j] > maxMin {
					maxMin = mins[j]
				}
			}
			if maxScale > 0 {
				iscale := 15 / maxScale
				for j := range sb {
					sb[j] = uint8(kqNearestInt(iscale * scales[j]))
				}
				kqPutHalf(b[:], 80, maxScale/15)
			} else {
				*sb = [16]byte{}
				kqPutHalf(b[:], 80, 0)
			}
			if maxMin > 0 {
				iscale := 15 / maxMin
				for j := range sb {
					sb[j] |= uint8(kqNearestInt(iscale*mins[j]) << 4)
				}
				kqPutHalf(b[:], 82, maxMin/15)
			} else {
				kqPutHalf(b[:], 82, 0)
			}
		} else {
			qw := imatrix[i*kqBlock : (i+1)*kqBlock]
			var sumX2 float32
			for _, v := range x {
				sumX2 += float32(v * v)
			}
			sigma2 := sumX2 / kqBlock
			var sw [16]float32
			for j := 0; j < 16; j++ {
				xs := x[16*j : 16*j+16]
				for l, v := range xs {
					weights[l] = qw[16*j+l] * kqSqrt(sigma2+float32(v*v))
				}
				for _, w := range weights {
					sw[j] += w
				}
				scales[j], mins[j] = kqMakeQKXQuants(3, xs, weights[:], L[16*j:16*j+16], aux[:], -0.9, 0.05, 36, false)
			}
			var Ls, Lm [16]uint8
			dm := kqMakeQPQuants(15, scales[:], Ls[:], sw[:])
			mm := kqMakeQPQuants(15, mins[:], Lm[:], sw[:])
			kqPutHalf(b[:], 80, dm)
			kqPutHalf(b[:], 82, mm)
			for j := range sb {
				sb[j] = Ls[j] | Lm[j]<<4
			}
		}

		// Requantize with the stored scales and mins.
		d, dmin := kqHalf(b[:], 80), kqHalf(b[:], 82)
		for j := 0; j < 16; j++ {
			dl := d * float32(sb[j]&0xF)
			if dl == 0 {
				continue
			}
			ml := dmin * float32(sb[j]>>4)
			for ii, v := range x[16*j : 16*j+16] {
				l := kqMax32(0, kqMin32(3, kqNearestInt((v+ml)/dl)))
				L[16*j+ii] = uint8(l)
			}
		}
		for h := 0; h < 2; h++ {
			q := (*[32]byte)(b[16+32*h:])
			Lh := (*[128]uint8)(L[128*h:])
			for l := range q {
				q[l] = Lh[l] | Lh[l+32]<<2 | Lh[l+64]<<4 | Lh[l+96]<<6
			}
		}
	}
}

// dotF32Q2K: each 16-weight group contributes d_j*Σq*x - m_j*Σx.
func dotF32Q2K(w []byte, x []float32) float32 {
	nb := len(x) / kqBlock
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[q2KBlockBytes]byte)(w[i*q2KBlockBytes:])
		xb := (*[kqBlock]float32)(x[i*kqBlock:])
		d, dmin := kqHalf(b[:], 80), kqHalf(b[:], 82)
		var bsum float32
		for h := 0; h < 2; h++ {
			for g := 0; g < 2; g++ {
				var qx, xs [4]float32
				q2KGroupF32((*[16]byte)(b[16+32*h+16*g:]), (*[112]float32)(xb[128*h+16*g:]), &qx, &xs)
				for k := 0; k < 4; k++ {
					sc := b[8*h+2*k+g]
					bsum += float32(d*float32(sc&0xF))*qx[k] - float32(dmin*float32(sc>>4))*xs[k]
				}
			}
		}
		sum += bsum
	}
	return sum
}

// q2KGroupF32 sets qx[k] = Σq*x and xs[k] = Σx for the four 2-bit rows of
// the 16 bytes q (x rows at x[0], x[32], x[64], x[96]).
func q2KGroupF32(q *[16]byte, x *[112]float32, qx, xs *[4]float32) {
	var q0, q1, q2, q3, x0, x1, x2, x3 float32
	for l, v := range q {
		xl := (*[97]float32)(x[l:])
		q0 += float32(kqLevel[v&3] * xl[0])
		q1 += float32(kqLevel[v>>2&3] * xl[32])
		q2 += float32(kqLevel[v>>4&3] * xl[64])
		q3 += float32(kqLevel[v>>6] * xl[96])
		x0 += xl[0]
		x1 += xl[32]
		x2 += xl[64]
		x3 += xl[96]
	}
	*qx = [4]float32{q0, q1, q2, q3}
	*xs = [4]float32{x0, x1, x2, x3}
}
