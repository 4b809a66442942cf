package kernels

import (
	"encoding/binary"
	"math"

	"github.com/inference-x/inference-x/gguf"
)

// Q8_K (ggml-common.h block_q8_K): 256 values as a float32 scale d, 256
// int8 codes q and 16 int16 sums of 16 codes each (bsums), value = q·d. It
// is the activation type of the K-quants and IQ formats, which use bsums
// for their min terms; ggml has no dot product with Q8_K weights.
const (
	q8KBlock = 256
	q8KBytes = 292
)

func init() {
	register(&Format{
		Type: gguf.TypeQ8_K,
		// No Dot, so VecDot stays unset, as in ggml-cpu's type traits.
		Dequantize: dequantizeQ8_K,
		// x86's quantize_row_q8_K is the reference, so no QuantizeCPU.
		Quantize: func(dst []byte, src []float32, _ []float32) { quantizeQ8_K(dst, src) },
	})
}

// dequantizeQ8_K is dequantize_row_q8_K: d·q in float32.
func dequantizeQ8_K(dst []float32, src []byte) {
	for i := 0; i+q8KBlock <= len(dst); i += q8KBlock {
		b := src[i/q8KBlock*q8KBytes:][:q8KBytes]
		y := dst[i : i+q8KBlock]
		d := math.Float32frombits(binary.LittleEndian.Uint32(b))
		for j, q := range b[4 : 4+q8KBlock] {
			y[j] = d * float32(int8(q))
		}
	}
}

// quantizeQ8_K is quantize_row_q8_K_ref: iscale = -127/max with max the
// signed element of largest magnitude (so d = 1/iscale may be negative),
// codes nearest_int(iscale·x) (ties to even) capped at 127, and the 16
// block sums. An all-zero block gets d = 0 and zero codes; ggml leaves its
// bsums unwritten, we write zeros.
func quantizeQ8_K(dst []byte, src []float32) {
	for i := 0; i+q8KBlock <= len(src); i += q8KBlock {
		x := src[i : i+q8KBlock]
		b := dst[i/q8KBlock*q8KBytes:][:q8KBytes]
		qs := b[4 : 4+q8KBlock]
		var amax, maxv float32
		for _, v := range x {
			if a := abs32(v); a > amax {
				amax, maxv = a, v
			}
		}
		if amax == 0 {
			clear(b)
			continue
		}
		iscale := -127 / maxv
		for j, v := range x {
			qs[j] = byte(min(127, legacyNearestInt(iscale*v)))
		}
		for j := 0; j < q8KBlock/16; j++ {
			var s int32
			for _, q := range qs[16*j : 16*j+16] {
				s += int32(int8(q))
			}
			binary.LittleEndian.PutUint16(b[4+q8KBlock+2*j:], uint16(int16(s)))
		}
		binary.LittleEndian.PutUint32(b, math.Float32bits(1/iscale))
	}
}
