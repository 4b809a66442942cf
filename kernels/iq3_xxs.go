package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// IQ3_XXS: super-blocks of 256 weights, 98 bytes: fp16 d, 64 bytes of
// grid indices (8 per 32-element sub-block, each naming 4 magnitudes in
// iq3xxsGrid), then one u32 per sub-block: four 7-bit sign codes (one per
// 8 weights, expanded by ksignsIQ2XS) in bits 0..27 and a 4-bit scale s
// in bits 28..31. Weight = d·(0.5+s)·0.5·magnitude·sign. The activation
// companion is Q8_K.

const iq3xxsBlockBytes = 98

// iq3xxsGroupMaxEps is ggml's GROUP_MAX_EPS_IQ3_XXS.
const iq3xxsGroupMaxEps = float32(1e-8)

func init() {
	register(&Format{
		Type:       gguf.TypeIQ3_XXS,
		VecDot:     gguf.TypeQ8_K,
		Dequantize: dequantizeIQ3XXS,
		Quantize:   quantizeIQ3XXS,
		Dot:        dotIQ3XXSSIMD, // simdorder.go
		DotF32:     dotF32IQ3XXS,
	})
}

func dequantizeIQ3XXS(dst []float32, src []byte) {
	for i := 0; i+256 <= len(dst); i += 256 {
		b := src[i/256*iq3xxsBlockBytes:][:iq3xxsBlockBytes]
		d := FP16ToF32(binary.LittleEndian.Uint16(b))
		for ib := 0; ib < 8; ib++ {
			qs := b[2+8*ib:][:8]
			aux := binary.LittleEndian.Uint32(b[66+4*ib:])
			db := float32(d*(0.5+float32(aux>>28))) * 0.5
			y := dst[i+32*ib:][:32]
			for l := 0; l < 4; l++ {
				g := uint64(iq3xxsGrid[qs[2*l]]) | uint64(iq3xxsGrid[qs[2*l+1]])<<32
				iq3DequantGroup(y[8*l:], db, iq3Signed(g, ksignsIQ2XS[aux>>(7*l)&127]))
			}
		}
	}
}

// quantizeIQ3XXS is quantize_row_iq3_xxs_impl (grid size 256), used by
// ggml with and without an importance matrix.
func quantizeIQ3XXS(dst []byte, src []float32, imatrix []float32) {
	lat := iq3XXSLattice()
	for i := 0; i+256 <= len(src); i += 256 {
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i : i+256]
		}
		quantizeIQ3XXSBlock(lat, dst[i/256*iq3xxsBlockBytes:][:iq3xxsBlockBytes], src[i:i+256], qw)
	}
}

func quantizeIQ3XXSBlock(lat *iq3Lattice, b []byte, x []float32, qw []float32) {
	var (
		q3                 [64]byte
		sas                [8]uint32
		scales             [8]float32
		weight, waux, xval [32]float32
		L                  [32]int8
		maxScale           float32
	)
	sigma2 := iq3Sigma2(x)
	for ib := 0; ib < 8; ib++ {
		xb := x[32*ib : 32*ib+32]
		var qwb []float32
		if qw != nil {
			qwb = qw[32*ib : 32*ib+32]
		}
		iq3Weights(&weight, &waux, xb, qwb, sigma2)
		var blockSigns [4]uint8
		for k := 0; k < 4; k++ {
			nflip := 0
			var s uint8
			for i := 8 * k; i < 8*k+8; i++ {
				if xb[i] >= 0 {
					xval[i] = xb[i]
				} else {
					xval[i] = -xb[i]
					nflip++
					s |= 1 << (i - 8*k)
				}
			}
			if nflip%2 != 0 {
				// Seven sign bits only: the eighth is the parity, so flip
				// the least important element instead.
				imin := 0
				vmin := float32(float32(weight[8*k]*xb[8*k]) * xb[8*k])
				for i := 1; i < 8; i++ {
					if ax := float32(float32(weight[8*k+i]*xb[8*k+i]) * xb[8*k+i]); ax < vmin {
						vmin, imin = ax, i
					}
				}
				xval[8*k+imin] = -xval[8*k+imin]
				s ^= 1 << imin
			}
			blockSigns[k] = s & 127
		}
		vmax := xval[0]
		for _, v := range xval[1:] {
			vmax = iq3Max(vmax, v)
		}
		L = [32]int8{}
		if vmax < iq3xxsGroupMaxEps {
			scales[ib] = 0
			continue
		}
		scale := lat.search(&xval, &weight, &waux, &L, vmax, 15, true, false)
		if scale < 0 {
			scale = -scale
			for k := range blockSigns {
				blockSigns[k] = ^blockSigns[k] & 127
			}
		}
		for k := 0; k < 8; k++ {
			q3[8*ib+k] = byte(lat.gridIndex(L[4*k:]))
		}
		sas[ib] = uint32(blockSigns[0]) | uint32(blockSigns[1])<<7 | uint32(blockSigns[2])<<14 | uint32(blockSigns[3])<<21
		scales[ib] = scale
		maxScale = iq3Max(maxScale, scale)
	}
	clear(b)
	if maxScale == 0 {
		return
	}
	d := maxScale / 31
	binary.LittleEndian.PutUint16(b, F32ToFP16(d*1.0125))
	id := 1 / d
	copy(b[2:66], q3[:])
	for ib, s := range scales {
		binary.LittleEndian.PutUint32(b[66+4*ib:], sas[ib]|iq3ScaleNibble(id, s)<<28)
	}
}

// dotF32IQ3XXS decodes in registers: per sub-block the signed magnitudes
// times x in float32, scaled by the sub-block factor, summed per
// super-block and scaled by d.
func dotF32IQ3XXS(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+256 <= len(x); i += 256 {
		b := w[i/256*iq3xxsBlockBytes:][:iq3xxsBlockBytes]
		var bs float32
		for ib := 0; ib < 8; ib++ {
			qs := b[2+8*ib:][:8]
			aux := binary.LittleEndian.Uint32(b[66+4*ib:])
			xb := x[i+32*ib:][:32]
			var s float32
			for l := 0; l < 4; l++ {
				g := uint64(iq3xxsGrid[qs[2*l]]) | uint64(iq3xxsGrid[qs[2*l+1]])<<32
				s += iq3GroupDotF32(iq3Signed(g, ksignsIQ2XS[aux>>(7*l)&127]), xb[8*l:])
			}
			bs += float32((0.5 + float32(aux>>28)) * s)
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b)) * 0.5 * bs)
	}
	return sum
}
