package kernels

import (
	"encoding/binary"
	"math"
)

// Helpers shared by the low-bit formats TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0 and
// Q2_0: the FP4 (E2M1) value table, the E8M0 and UE4M3 scale encodings, the
// companion-block accessors and C's float-to-integer rounding as ggml's x86
// build performs it.

// Companion activation block layouts (ggml-common.h: block_q8_0, block_q8_K).
const (
	q8_0BlockSize  = 32
	q8_0BlockBytes = 34 // fp16 d, int8 qs[32]
	q8KBlockSize   = 256
	q8KBlockBytes  = 292 // f32 d, int8 qs[256], int16 bsums[16]
	q8KQsOffset    = 4
)

// kvaluesFP4 are the E2M1 values doubled, shared by MXFP4 and NVFP4
// (ggml-common.h: kvalues_fp4 / kvalues_mxfp4). Index 8 is -0, stored as 0.
var kvaluesFP4 = [16]int8{0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}

// kvaluesFP4F32 is kvaluesFP4 as float32, for the f32 dot products.
var kvaluesFP4F32 = func() (t [16]float32) {
	for i, v := range kvaluesFP4 {
		t[i] = float32(v)
	}
	return t
}()

// e8m0ToF32Half returns 2^(x-128): half the E8M0 value x, because the FP4
// table holds doubled values (ggml-impl.h: ggml_e8m0_to_fp32_half). 0 and 1
// give the subnormals 2^-128 and 2^-127; 255 is not treated as NaN.
func e8m0ToF32Half(x uint8) float32 {
	if x < 2 {
		return math.Float32frombits(0x00200000 << x)
	}
	return math.Float32frombits(uint32(x-1) << 23)
}

// ue4m3HalfTable maps every UE4M3 byte to half its value (ggml-impl.h:
// ggml_ue4m3_to_fp32): 4 exponent bits with bias 7 and 3 mantissa bits; the
// top bit of the byte is ignored, 0 and 0x7f (NaN) decode to 0.
var ue4m3HalfTable = func() (t [256]float32) {
	for i := range t {
		x := uint8(i)
		if x == 0 || x == 0x7f {
			continue
		}
		exp := int(x>>3) & 0xf
		man := float32(x & 7)
		var raw float32
		if exp == 0 {
			raw = float32(math.Ldexp(float64(man), -9))
		} else {
			raw = float32(math.Ldexp(float64(1+man/8), exp-7))
		}
		t[i] = raw * 0.5
	}
	return t
}()

// f32ToUE4M3 encodes a positive scale as UE4M3 the way ggml does
// (ggml-impl.h: ggml_fp32_to_ue4m3): clamp to 448, round the mantissa on its
// first dropped bit (ties away), saturate to 0x7e, and round subnormals with
// int(x*512 + 0.5). Non-positive and NaN inputs give 0.
func f32ToUE4M3(x float32) uint8 {
	if !(x > 0) {
		return 0
	}
	if x > 448 {
		x = 448
	}
	bits := math.Float32bits(x)
	e := int((bits>>23)&0xff) - 127 + 7
	if e <= 0 {
		m := truncInt32(float32(x*512) + 0.5)
		if m > 7 {
			m = 7
		}
		if m < 1 {
			return 0
		}
		return uint8(m)
	}
	if e >= 15 {
		return 0x7e
	}
	m := int(bits>>20)&7 + int(bits>>19)&1
	if m > 7 {
		m = 0
		e++
		if e >= 15 {
			return 0x7e
		}
	}
	return uint8(e<<3 | m)
}

// bestIndexFP4 returns the FP4 code whose value times e is nearest to x, the
// first one on ties (ggml-quants.c: best_index_mxfp4).
func bestIndexFP4(x, e float32) uint8 {
	best := 0
	bestErr := abs32(float32(float32(kvaluesFP4F32[0]*e) - x))
	for i := 1; i < 16; i++ {
		err := abs32(float32(float32(kvaluesFP4F32[i]*e) - x))
		if err < bestErr {
			best, bestErr = i, err
		}
	}
	return uint8(best)
}

// truncInt32 converts f to int32 truncating toward zero like x86's
// cvttss2si, which is what C's (int)f compiles to: NaN and out-of-range
// values give math.MinInt32 (Go leaves that case implementation-defined).
func truncInt32(f float32) int32 {
	if g := float64(f); g >= -2147483648 && g < 2147483648 {
		return int32(f)
	}
	return math.MinInt32
}

// roundAwayInt32 is C's (int)roundf(f) on x86: round half away from zero,
// then convert as truncInt32 does.
func roundAwayInt32(f float32) int32 {
	return truncInt32(float32(math.Round(float64(f))))
}

// lroundfLow32 is the low 32 bits of glibc's lroundf(f) on x86-64 (what
// `int xi = lroundf(v) + 1` keeps): round half away from zero; NaN, Inf and
// values beyond int64 give LONG_MIN, whose low 32 bits are 0.
func lroundfLow32(f float32) int32 {
	g := math.Round(float64(f))
	if !(g >= -9223372036854775808 && g < 9223372036854775808) {
		return 0
	}
	return int32(int64(g))
}

// maxNaNLikeC returns a > b ? a : b, keeping C's (and x86 maxss's) NaN
// behaviour: a NaN in either operand yields b.
func maxNaNLikeC(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// q8_0Scale returns the fp16 scale of the Q8_0 block starting at a[0].
func q8_0Scale(a []byte) float32 { return FP16ToF32(binary.LittleEndian.Uint16(a)) }
