package kernels

import "math"

// FP16ToF32 converts an IEEE half-precision value to float32 exactly. It
// is small enough to inline, which matters in the per-element loops.
func FP16ToF32(h uint16) float32 {
	o := uint32(h&0x7fff) << 13
	e := o & 0x0f800000
	o += (127 - 15) << 23
	if e == 0x0f800000 { // Inf or NaN: exponent all ones
		o += (128 - 16) << 23
	} else if e == 0 { // zero or subnormal: (1.m - 1)*2^-14
		o += 1 << 23
		o = math.Float32bits(math.Float32frombits(o) - 0x1p-14)
	}
	return math.Float32frombits(o | uint32(h&0x8000)<<16)
}

// F32ToFP16 converts f to half precision, rounding to nearest even, as
// ggml's ggml_compute_fp32_to_fp16 and x86's F16C do; NaN becomes 0x7e00
// with the sign kept.
func F32ToFP16(f float32) uint16 {
	const scaleToInf = float32(0x1.0p+112)
	const scaleToZero = float32(0x1.0p-110)
	base := float32(float32(abs32(f)*scaleToInf) * scaleToZero)
	w := math.Float32bits(f)
	shl1 := w + w
	sign := w & 0x80000000
	bias := shl1 & 0xff000000
	if bias < 0x71000000 {
		bias = 0x71000000
	}
	base = math.Float32frombits((bias>>1)+0x07800000) + base
	bits := math.Float32bits(base)
	expBits := (bits >> 13) & 0x00007c00
	mantBits := bits & 0x00000fff
	nonsign := expBits + mantBits
	if shl1 > 0xff000000 {
		nonsign = 0x7e00
	}
	return uint16(sign>>16) | uint16(nonsign)
}

// BF16ToF32 converts a bfloat16 value to float32 exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts f to bfloat16 rounding to nearest even; NaN stays a
// quiet NaN (ggml_compute_fp32_to_bf16).
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + (0x7fff + ((u >> 16) & 1))) >> 16)
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ 0x80000000) }

// toF16Go is ToF16 in Go.
func toF16Go(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = F32ToFP16(v)
	}
}

// roundF16Go is RoundF16 in Go.
func roundF16Go(x []float32) {
	for i, v := range x {
		x[i] = FP16ToF32(F32ToFP16(v))
	}
}
