package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// Q3_K (ggml-common.h block_q3_K), 110 bytes per 256 weights:
//
//	hmask   32 bytes: bit k of byte l is the high bit of element 32k+l;
//	        a clear bit subtracts 4
//	qs      64 bytes: low 2 bits; in 128-element half h, bits 2k..2k+1 of
//	        byte l of qs[32h:] belong to element 128h+32k+l
//	scales  12 bytes: sixteen 6-bit scales stored +32 (q3KScales)
//	d       fp16 super-block scale
//
// Weight = d*(scale_j-32)*(q-4·[high bit clear]) for the 16-element group j.
const q3KBlockBytes = 110

func init() {
	register(&Format{
		Type:       gguf.TypeQ3_K,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeQ3K,
		Quantize:   quantizeQ3K,
		Dot:        dotQ3K,
		DotF32:     dotF32Q3K,
	})
}

// q3KScales unpacks the 16 scales (minus 32) from the 12 scale bytes: the
// low 4 bits of scale j are in byte j (j<8, low nibble) or j-8 (high
// nibble), the top 2 bits in byte 8+j%4 at bit 2*(j/4).
func q3KScales(b []byte) (s [16]int8) {
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	b = b[:12]
	a0 := binary.LittleEndian.Uint32(b[0:])
	a1 := binary.LittleEndian.Uint32(b[4:])
	tmp := binary.LittleEndian.Uint32(b[8:])
	aux := [4]uint32{
		a0&kmask2 | (tmp>>0&kmask1)<<4,
		a1&kmask2 | (tmp>>2&kmask1)<<4,
		a0>>4&kmask2 | (tmp>>4&kmask1)<<4,
		a1>>4&kmask2 | (tmp>>6&kmask1)<<4,
	}
	for k, v := range aux {
		for j := 0; j < 4; j++ {
			s[4*k+j] = int8(v>>(8*j)) - 32
		}
	}
	return s
}

func dequantizeQ3K(dst []float32, src []byte) {
	nb := len(dst) / kqBlock
	for i := 0; i < nb; i++ {
		b := (*[q3KBlockBytes]byte)(src[i*q3KBlockBytes:])
		y := (*[kqBlock]float32)(dst[i*kqBlock:])
		d := kqHalf(b[:], 108)
		sc := q3KScales(b[96:108])
		for h := 0; h < 2; h++ {
			for g := 0; g < 2; g++ {
				// Rows k=0..3 of this half use scales 8h+2k+g.
				j := 8*h + g
				q3KGroupDequant((*[16]byte)(b[32+32*h+16*g:]), (*[16]byte)(b[16*g:]), uint(4*h),
					(*[112]float32)(y[128*h+16*g:]),
					d*float32(sc[j]), d*float32(sc[j+2]), d*float32(sc[j+4]), d*float32(sc[j+6]))
			}
		}
	}
}

// q3KGroupDequant decodes the four 16-element rows (2-bit fields k=0..3 of
// q, high bits at bit hsh+k of hm) into y[0:16], y[32:48], y[64:80],
// y[96:112] with the row scales d0..d3.
func q3KGroupDequant(q, hm *[16]byte, hsh uint, y *[112]float32, d0, d1, d2, d3 float32) {
	hsh &= 7
	for l := 0; l < 16; l++ {
		v, h := uint32(q[l]), uint32(hm[l])>>hsh
		yl := (*[97]float32)(y[l:])
		yl[0] = d0 * q3KLevel[v&3|(h&1)<<2]
		yl[32] = d1 * q3KLevel[v>>2&3|(h&2)<<1]
		yl[64] = d2 * q3KLevel[v>>4&3|h&4]
		yl[96] = d3 * q3KLevel[v>>6|(h&8)>>1]
	}
}

// q3KLevel maps a 3-bit Q3_K level (2 low bits, high bit set = no -4) to
// its value as float32.
var q3KLevel = [8]float32{-4, -3, -2, -1, 0, 1, 2, 3}

// quantizeQ3K is quantize_row_q3_K_ref (make_q3_quants per 16 weights), or
// quantize_row_q3_K_impl with an importance matrix (make_qx_quants with
// weights qw*sqrt(sigma2+x²), then again for the scales).
func quantizeQ3K(dst []byte, src []float32, imatrix []float32) {
	nb := len(src) / kqBlock
	var L [kqBlock]int8
	var scales [16]float32
	for i := 0; i < nb; i++ {
		b := (*[q3KBlockBytes]byte)(dst[i*q3KBlockBytes:])
		x := (*[kqBlock]float32)(src[i*kqBlock:])
		sb := (*[12]byte)(b[96:])
		*sb = [12]byte{}
		put := func(j int, l uint8) { // l in 0..63
			if j < 8 {
				sb[j] = l & 0xF
			} else {
				sb[j-8] |= (l & 0xF) << 4
			}
			sb[j%4+8] |= (l >> 4) << (2 * (j / 4))
		}
		if imatrix == nil {
			var maxScale, amax float32
			for j := 0; j < 16; j++ {
				scales[j] = kqMakeQ3Quants(4, x[16*j:16*j+16], L[16*j:16*j+16])
				if s := abs32(scales[j]); s > amax {
					amax, maxScale = s, scales[j]
				}
			}
			if maxScale != 0 {
				iscale := -32 / maxScale
				for j := 0; j < 16; j++ {
					l := int32(int8(kqNearestInt(iscale * scales[j])))
					put(j, uint8(kqMax32(-32, kqMin32(31, l))+32))
				}
				kqPutHalf(b[:], 108, 1/iscale)
			} else {
				kqPutHalf(b[:], 108, 0)
			}
		} else {
			qw := imatrix[i*kqBlock : (i+1)*kqBlock]
			var sumX2 float32
			for _, v := range x {
				sumX2 += float32(v * v)
			}
			sigma2 := 2 * sumX2 / kqBlock
			var weight [16]float32
			var sw [16]float32
			for j := 0; j < 16; j++ {
				for l := range weight {
					v := x[16*j+l]
					weight[l] = qw[16*j+l] * kqSqrt(sigma2+float32(v*v))
				}
				var sumW float32
				for _, w := range weight {
					sumW += w
				}
				sw[j] = sumW
				scales[j] = kqMakeQXQuants(4, x[16*j:16*j+16], L[16*j:16*j+16], weight[:])
			}
			var Ls [16]int8
			dBlock := kqMakeQXQuants(32, scales[:], Ls[:], sw[:])
			for j, l := range Ls {
				put(j, uint8(l))
			}
			kqPutHalf(b[:], 108, dBlock)
		}

		// Requantize with the stored scales.
		d := kqHalf(b[:], 108)
		sc := q3KScales(sb[:])
		for j := 0; j < 16; j++ {
			dl := d * float32(sc[j])
			if dl == 0 {
				continue
			}
			for ii, v := range x[16*j : 16*j+16] {
				l := kqMax32(-4, kqMin32(3, kqNearestInt(v/dl)))
				L[16*j+ii] = int8(l + 4)
			}
		}

		hm := (*[32]byte)(b[0:])
		*hm = [32]byte{}
		for j := 0; j < kqBlock; j++ {
			if L[j] > 3 {
				hm[j%32] |= 1 << (j / 32)
				L[j] -= 4
			}
		}
		for h := 0; h < 2; h++ {
			q := (*[32]byte)(b[32+32*h:])
			Lh := (*[128]int8)(L[128*h:])
			for l := range q {
				q[l] = uint8(Lh[l]) | uint8(Lh[l+32])<<2 | uint8(Lh[l+64])<<4 | uint8(Lh[l+96])<<6
			}
		}
	}
}

// dotF32Q3K: each 16-weight group contributes d*scale_j*Σq*x.
func dotF32Q3K(w []byte, x []float32) float32 {
	nb := len(x) / kqBlock
	var sum float32
	for i := 0; i < nb; i++ {
		b := (*[q3KBlockBytes]byte)(w[i*q3KBlockBytes:])
		xb := (*[kqBlock]float32)(x[i*kqBlock:])
		sc := q3KScales(b[96:108])
		var bsum float32
		for h := 0; h < 2; h++ {
			for g := 0; g < 2; g++ {
				j := 8*h + g
				s0, s1, s2, s3 := q3KGroupF32((*[16]byte)(b[32+32*h+16*g:]), (*[16]byte)(b[16*g:]), uint(4*h),
					(*[112]float32)(xb[128*h+16*g:]))
				bsum += float32(float32(sc[j])*s0) + float32(float32(sc[j+2])*s1) +
					float32(float32(sc[j+4])*s2) + float32(float32(sc[j+6])*s3)
			}
		}
		sum += float32(kqHalf(b[:], 108) * bsum)
	}
	return sum
}

// q3KGroupF32 returns Σq*x for the four rows q3KGroupDequant decodes.
func q3KGroupF32(q, hm *[16]byte, hsh uint, x *[112]float32) (s0, s1, s2, s3 float32) {
	hsh &= 7
	for l := 0; l < 16; l++ {
		v, h := uint32(q[l]), uint32(hm[l])>>hsh
		xl := (*[97]float32)(x[l:])
		s0 += float32(q3KLevel[v&3|(h&1)<<2] * xl[0])
		s1 += float32(q3KLevel[v>>2&3|(h&2)<<1] * xl[32])
		s2 += float32(q3KLevel[v>>4&3|h&4] * xl[64])
		s3 += float32(q3KLevel[v>>6|(h&8)>>1] * xl[96])
	}
	return s0, s1, s2, s3
}
