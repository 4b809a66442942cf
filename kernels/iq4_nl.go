package kernels

import (
	"encoding/binary"

	"github.com/inference-x/inference-x/gguf"
)

// IQ4_NL: blocks of 32 weights, 18 bytes: fp16 scale d, then 16 bytes of
// 4-bit indices into kvaluesIQ4NL (byte j: element j low nibble, element
// j+16 high nibble). Weight = d·kvalues[index]. The activation companion is
// Q8_0 (fp16 scale + 32 int8).

const (
	iq4nlBlockBytes    = 18
	iq4nlActBlockBytes = 34 // block_q8_0: fp16 d + 32 int8
)

func init() {
	register(&Format{
		Type:        gguf.TypeIQ4_NL,
		VecDot:      gguf.TypeQ8_0,
		Dequantize:  dequantizeIQ4NL,
		Quantize:    quantizeIQ4NL,
		QuantizeCPU: quantizeIQ4NLCPU,
		Dot:         dotIQ4NL,
		DotF32:      dotF32IQ4NL,
	})
}

func dequantizeIQ4NL(dst []float32, src []byte) {
	for i := 0; i+32 <= len(dst); i += 32 {
		b := src[i/32*iq4nlBlockBytes:][:iq4nlBlockBytes]
		y := dst[i : i+32]
		d := FP16ToF32(binary.LittleEndian.Uint16(b))
		qs := b[2:18]
		for j, q := range qs {
			y[j] = d * float32(kvaluesIQ4NL[q&0xf])
			y[j+16] = d * float32(kvaluesIQ4NL[q>>4])
		}
	}
}

// quantizeIQ4NL is ggml_quantize_chunk(IQ4_NL): quantize_iq4_nl, a scale
// search over 15 candidates per block (ntry = 7), weighted by x² or by the
// importance matrix.
func quantizeIQ4NL(dst []byte, src []float32, imatrix []float32) {
	var L [32]uint8
	for i := 0; i+32 <= len(src); i += 32 {
		var qw []float32
		if imatrix != nil {
			qw = imatrix[i : i+32]
		}
		quantizeIQ4NLBlock(dst[i/32*iq4nlBlockBytes:][:iq4nlBlockBytes], src[i:i+32], qw, 7, &L)
	}
}

// quantizeIQ4NLCPU is ggml-cpu's from_float for IQ4_NL,
// quantize_row_iq4_nl_ref: no scale search (ntry = -1), weights x².
//
// For an all-zero block ggml keeps the indices of the previous block of
// the row (its index buffer is reused); for an all-zero block that starts
// a row it writes whatever its stack held, which no stateless
// implementation can reproduce: there we write index 8 (level +1, so the
// block decodes to +0), the indices ggml's chunk quantizer gives.
func quantizeIQ4NLCPU(dst []byte, src []float32) {
	var L [32]uint8
	for i := range L {
		L[i] = 8
	}
	for i := 0; i+32 <= len(src); i += 32 {
		quantizeIQ4NLBlock(dst[i/32*iq4nlBlockBytes:][:iq4nlBlockBytes], src[i:i+32], nil, -1, &L)
	}
}

// quantizeIQ4NLBlock is quantize_row_iq4_nl_impl for a 32-element super
// block. L carries ggml's index buffer from block to block.
func quantizeIQ4NLBlock(b []byte, x []float32, qw []float32, ntry int, L *[32]uint8) {
	var sigma2 float32
	for _, v := range x[:32] {
		sigma2 += float32(v * v)
	}
	sigma2 *= 2.0 / 32
	var w [32]float32
	iq4Weights(&w, x, qw, sigma2)
	d := iq4SubblockScale(x, &w, L[:], ntry)
	binary.LittleEndian.PutUint16(b, F32ToFP16(d))
	if ntry > 0 {
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for j, v := range x[:32] {
			L[j] = iq4BestIndex(id * v)
		}
	}
	iq4Pack(b[2:18], L[:])
}

// dotF32IQ4NL decodes each block in registers: the block's levels times x
// summed in float32, scaled once by d and added to the row sum.
func dotF32IQ4NL(w []byte, x []float32) float32 {
	var sum float32
	for i := 0; i+32 <= len(x); i += 32 {
		b := w[i/32*iq4nlBlockBytes:][:iq4nlBlockBytes]
		xb := x[i : i+32]
		qs := b[2:18]
		var s1, s2 float32
		for j, q := range qs {
			s1 += float32(float32(kvaluesIQ4NL[q&0xf]) * xb[j])
			s2 += float32(float32(kvaluesIQ4NL[q>>4]) * xb[j+16])
		}
		sum += float32(FP16ToF32(binary.LittleEndian.Uint16(b)) * (s1 + s2))
	}
	return sum
}
