package kernels

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels/internal/ggqv"
)

// lowbitTypes are the formats of lowbit_common.go. All follow ggml's x86
// SIMD order: fed act_q_simd they reproduce dot_simd exactly (simdExact).
var lowbitTypes = []gguf.Type{
	gguf.TypeTQ1_0, gguf.TypeTQ2_0, gguf.TypeMXFP4, gguf.TypeNVFP4, gguf.TypeQ1_0, gguf.TypeQ2_0,
}

// TestLowbitDots checks the integer dot of the low-bit formats on ggml's own
// activation bytes (so it does not depend on the Q8_0/Q8_K quantizers):
// bit-exact against ggml (checkDotBits: dot_simd for the formats in
// simdExact, else dot_x64), within dotTolerance of dot_simd with
// act_q_simd; and DotF32 against a float64 reference. It logs the worst
// relative errors.
func TestLowbitDots(t *testing.T) {
	files := map[uint32]*ggqv.File{}
	for _, vf := range loadVectors(t) {
		files[vf.TypeID] = vf
	}
	for _, typ := range lowbitTypes {
		t.Run(typ.String(), func(t *testing.T) {
			vf := files[uint32(typ)]
			if vf == nil {
				t.Fatalf("no test vectors for %v", typ)
			}
			f, err := Lookup(typ)
			if err != nil {
				t.Fatal(err)
			}
			var worstSIMD, worstF32 float64
			deq := make([]float32, 0)
			for _, c := range vf.Cases {
				if c.Act == nil {
					t.Fatalf("%s: no activation", c.Name)
				}
				n, rs := c.PerRow, c.RowSize
				deq = append(deq[:0], make([]float32, n)...)
				for r := 0; r < c.Rows; r++ {
					q := c.Quant[r*rs : (r+1)*rs]
					scale := absDotScale(f, deq, q, c.Act)
					if err := checkDotBits(f, n, q, &c, r); err != "" {
						t.Errorf("%s row %d: %s", c.Name, r, err)
					}
					got := f.Dot(n, q, c.ActSIMD)
					e := math.Abs(float64(got)-float64(c.DotSIMD[r])) / scale
					if !(e <= dotTolerance) {
						t.Errorf("%s row %d: dot = %g, ggml simd %g (relative error %.3g)", c.Name, r, got, c.DotSIMD[r], e)
					}
					worstSIMD = max(worstSIMD, e)
					var want float64
					for i := range deq {
						want += float64(deq[i]) * float64(c.Act[i])
					}
					e = math.Abs(float64(f.DotF32(q, c.Act))-want) / scale
					if !(e <= dotTolerance) {
						t.Errorf("%s row %d: f32 dot relative error %.3g", c.Name, r, e)
					}
					worstF32 = max(worstF32, e)
				}
			}
			t.Logf("%v: worst relative error dot vs dot_simd %.3g, dotf32 vs float64 %.3g; bit-exact (simd: %v)", typ, worstSIMD, worstF32, simdExact[typ])
		})
	}
}

// TestLowbitScales checks the scale encodings against values worked out by
// hand from the UE4M3 and E8M0 definitions.
func TestLowbitScales(t *testing.T) {
	for _, c := range []struct {
		b    uint8
		half float32
	}{
		{0x00, 0}, {0x7f, 0}, {0x01, 1.0 / 1024}, {0x38, 0.5}, {0x7e, 224}, {0x08, 1.0 / 128}, {0xb8, 0.5},
	} {
		if got := ue4m3HalfTable[c.b]; got != c.half {
			t.Errorf("ue4m3(%#02x)/2 = %g, want %g", c.b, got, c.half)
		}
	}
	for _, c := range []struct {
		x float32
		b uint8
	}{
		{0, 0}, {-1, 0}, {float32(math.NaN()), 0}, {1, 0x38}, {448, 0x7e}, {1e9, 0x7e}, {300, 0x7e},
		{1.0 / 512, 1}, {1.0 / 2048, 0}, {1.0625, 0x39}, {1.0625 - 1.0/1024, 0x38}, {1.9375, 0x40},
	} {
		if got := f32ToUE4M3(c.x); got != c.b {
			t.Errorf("ue4m3(%g) = %#02x, want %#02x", c.x, got, c.b)
		}
	}
	for _, c := range []struct {
		e uint8
		v float32
	}{{0, 0x1p-128}, {1, 0x1p-127}, {2, 0x1p-126}, {128, 1}, {255, 0x1p127}} {
		if got := e8m0ToF32Half(c.e); got != c.v {
			t.Errorf("e8m0/2(%d) = %g, want %g", c.e, got, c.v)
		}
	}
}

// TestLowbitNoAlloc checks that the per-token kernels do not allocate.
func TestLowbitNoAlloc(t *testing.T) {
	const n = 1024
	for _, typ := range lowbitTypes {
		f, _ := Lookup(typ)
		wb, _ := typ.RowBytes(n)
		ab, _ := f.VecDot.RowBytes(n)
		w, a := make([]byte, wb), make([]byte, ab)
		x, dst := make([]float32, n), make([]float32, n)
		allocs := testing.AllocsPerRun(10, func() {
			f.Dequantize(dst, w)
			sink = f.Dot(n, w, a) + f.DotF32(w, x)
		})
		if allocs != 0 {
			t.Errorf("%v: %v allocations per run", typ, allocs)
		}
	}
}

// TestSumInt8x8 checks the SWAR byte sum used by the Q1_0 dot against a
// plain loop, extremes included.
func TestSumInt8x8(t *testing.T) {
	words := []uint64{0, ^uint64(0), 0x8080808080808080, 0x7f7f7f7f7f7f7f7f, 0x807f807f807f807f}
	for i := uint64(1); len(words) < 2000; i++ {
		words = append(words, i*0x9e3779b97f4a7c15^i<<17)
	}
	for _, u := range words {
		var want int32
		for j := range 8 {
			want += int32(int8(u >> (8 * j)))
		}
		if got := sumInt8x8(u); got != want {
			t.Fatalf("sumInt8x8(%#016x) = %d, want %d", u, got, want)
		}
	}
}

// TestLowbitQuantizeSpecials feeds NaN, Inf, huge and subnormal values to
// the quantizers: nothing may panic, and a block of values within the fp16
// range decodes to finite values (beyond it the fp16 scales overflow, as in
// ggml).
func TestLowbitQuantizeSpecials(t *testing.T) {
	specials := []float32{
		float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32,
		0x1p-149, -0x1p-149, 0x1p-130, float32(math.Copysign(0, -1)), 0, 1, -1, 65504, 70000,
	}
	for _, typ := range lowbitTypes {
		f, _ := Lookup(typ)
		n := typ.BlockSize() * 2
		src := make([]float32, n)
		dst := make([]byte, n/typ.BlockSize()*typ.BlockBytes())
		deq := make([]float32, n)
		for k := range specials {
			for i := range src {
				src[i] = specials[(i*7+k)%len(specials)]
			}
			f.Quantize(dst, src, nil)
			f.Dequantize(deq, dst)
			for i := range src {
				src[i] = specials[(i+k)%len(specials)] * 1e-3
				if !(abs32(src[i]) < 1e4) {
					src[i] = 0.5
				}
			}
			f.Quantize(dst, src, nil)
			f.Dequantize(deq, dst)
			for i, v := range deq {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("%v: finite input %g decoded to %g", typ, src[i], v)
				}
			}
		}
	}
}

// refDotLowbit ports ggml's x86 vec_dot code (ggml-cpu/arch/x86/quants.c,
// the __AVX2__ branches, as the zen4 and sapphirerapids builds compile
// them) for the low-bit formats, as a second opinion on the restructured
// loops over arbitrary bytes: MXFP4, NVFP4, Q1_0 and the ternary types
// instruction by instruction on emulated registers (refDotFP4AVX2,
// refDotQ1AVX2, refDotTernaryAVX2); Q2_0 has no x86 code, so it is the
// scalar ggml_vec_dot_q2_0_q8_0_generic with the two fused multiply-adds
// gcc contracts it to (vfmadd231ss in both builds).
func refDotLowbit(typ gguf.Type, n int, w, a []byte) float32 {
	switch typ {
	case gguf.TypeQ1_0:
		return refDotQ1AVX2(n, w, a)
	case gguf.TypeQ2_0:
		var sumf float32
		for i := 0; i < n/64; i++ {
			x := w[i*18:]
			var sumi float32
			for k := 0; k < 2; k++ {
				qy, d1 := refQ8_0(a, i*2+k)
				var sb int32
				for b := 0; b < 8; b++ {
					c := x[2+k*8+b]
					for l := 0; l < 4; l++ {
						sb += (int32(c>>(2*l)&3) - 1) * int32(int8(qy[b*4+l]))
					}
				}
				sumi = fma32(sb2f(sb), d1, sumi)
			}
			sumf = fma32(sumi, refF16(x), sumf)
		}
		return sumf
	case gguf.TypeMXFP4, gguf.TypeNVFP4:
		return refDotFP4AVX2(typ, n, w, a)
	case gguf.TypeTQ1_0, gguf.TypeTQ2_0:
		return refDotTernaryAVX2(typ, n, w, a)
	}
	panic("refDotLowbit: " + typ.String())
}

// refF16 reads a little-endian fp16 value.
func refF16(b []byte) float32 { return FP16ToF32(uint16(b[0]) | uint16(b[1])<<8) }

// refQ8_0 returns the codes and the scale of Q8_0 block k of a.
func refQ8_0(a []byte, k int) ([]byte, float32) {
	blk := a[k*q8_0BlockBytes:]
	return blk[2:34], refF16(blk)
}

// sign8 is one byte of _mm256_sign_epi8(a, b).
func sign8(a, b byte) byte {
	switch {
	case int8(b) < 0:
		return -a
	case b == 0:
		return 0
	}
	return a
}

// mulAdd8 is mul_add_epi8: maddubs(sign(x, x), sign(y, x)).
func mulAdd8(x, y ymm) ymm { return x.ymmOp(x, sign8).maddubs(y.ymmOp(x, sign8)) }

// maddOnes is _mm256_madd_epi16(v, set1_epi16(1)) followed by
// _mm256_cvtepi32_ps.
func (v ymm) maddOnes() (r [8]float32) {
	for t := range r {
		r[t] = float32(int32(v.i16(2*t)) + int32(v.i16(2*t+1)))
	}
	return r
}

// pshufb16 is _mm_shuffle_epi8(table, idx) on 16 bytes.
func pshufb16(table *[16]byte, idx []byte) (r [16]byte) {
	for i := range r {
		if idx[i]&0x80 == 0 {
			r[i] = table[idx[i]&15]
		}
	}
	return r
}

// nibbles16 returns _mm_and_si128(_mm_srli_epi16(x, sh), 0x0f) of 16 bytes.
func nibbles16(x []byte, sh uint) (r [16]byte) {
	for i := 0; i < 16; i += 2 {
		v := (uint16(x[i]) | uint16(x[i+1])<<8) >> sh
		r[i], r[i+1] = byte(v)&15, byte(v>>8)&15
	}
	return r
}

// refDotFP4AVX2 ports ggml_vec_dot_mxfp4_q8_0 and ggml_vec_dot_nvfp4_q8_0.
func refDotFP4AVX2(typ gguf.Type, n int, w, a []byte) float32 {
	var table [16]byte
	for i, v := range kvaluesFP4 {
		table[i] = byte(v)
	}
	load := func(b []byte) (r ymm) { copy(r[:], b); return r }
	if typ == gguf.TypeMXFP4 {
		nb := n / 32
		var acc [2][8]float32
		ib := 0
		for ; ib+1 < nb; ib += 2 {
			for k := range 2 {
				x := w[(ib+k)*17:]
				lo, hi := nibbles16(x[1:17], 0), nibbles16(x[1:17], 4)
				var q4 ymm
				l, h := pshufb16(&table, lo[:]), pshufb16(&table, hi[:])
				copy(q4[:16], l[:])
				copy(q4[16:], h[:])
				qy, dy := refQ8_0(a, ib+k)
				p := mulAdd8(q4, load(qy)).maddOnes()
				scale := dy * e8m0ToF32Half(x[0])
				for t := range p {
					acc[k][t] = fma32(scale, p[t], acc[k][t])
				}
			}
		}
		for t := range acc[0] {
			acc[0][t] += acc[1][t]
		}
		sumf := hsum8(&acc[0])
		for ; ib < nb; ib++ {
			x := w[ib*17:]
			qy, dy := refQ8_0(a, ib)
			d := dy * e8m0ToF32Half(x[0])
			var s1, s2 int32
			for j := 0; j < 16; j++ {
				s1 += int32(int8(qy[j])) * int32(kvaluesFP4[x[1+j]&0xf])
				s2 += int32(int8(qy[j+16])) * int32(kvaluesFP4[x[1+j]>>4])
			}
			sumf = fma32(sb2f(s1+s2), d, sumf) // vfmadd231ss
		}
		return sumf
	}
	var acc [8]float32
	for ib := 0; ib < n/64; ib++ {
		x := w[ib*36:]
		for h := range 2 {
			qs := x[4+16*h : 20+16*h]
			lo, hi := nibbles16(qs, 0), nibbles16(qs, 4)
			l, u := pshufb16(&table, lo[:]), pshufb16(&table, hi[:])
			var q4 ymm // unpacklo_epi64(l, u) low, unpackhi_epi64(l, u) high
			copy(q4[0:8], l[0:8])
			copy(q4[8:16], u[0:8])
			copy(q4[16:24], l[8:16])
			copy(q4[24:32], u[8:16])
			qy, dy := refQ8_0(a, 2*ib+h)
			p := mulAdd8(q4, load(qy)).maddOnes()
			s0, s1 := ue4m3HalfTable[x[2*h]]*dy, ue4m3HalfTable[x[2*h+1]]*dy
			for t := range p {
				sc := s0
				if t >= 4 {
					sc = s1
				}
				acc[t] = fma32(sc, p[t], acc[t])
			}
		}
	}
	return hsum8(&acc)
}

// refDotQ1AVX2 ports ggml_vec_dot_q1_0_q8_0.
func refDotQ1AVX2(n int, w, a []byte) float32 {
	var acc [8]float32
	for ib := 0; ib < n/128; ib++ {
		x := w[ib*18:]
		var blk [8]float32
		for k := range 4 {
			qy, dy := refQ8_0(a, 4*ib+k)
			var sy ymm // sign applied where the bit is clear: (qy ^ m) - m
			for j := range sy {
				var m byte
				if x[2+4*k+j/8]&(1<<(j%8)) == 0 {
					m = 0xff
				}
				sy[j] = (qy[j] ^ m) - m
			}
			p := splat8(1).maddubs(sy).maddOnes()
			for t := range p {
				if k == 0 {
					blk[t] = dy * p[t]
				} else {
					blk[t] = fma32(dy, p[t], blk[t])
				}
			}
		}
		d0 := refF16(x)
		for t := range acc {
			acc[t] = fma32(d0, blk[t], acc[t])
		}
	}
	return hsum8(&acc)
}

func sb2f(i int32) float32 { return float32(i) }

// A ymm is a 256-bit register as 32 bytes, for refDotTernaryAVX2.
type ymm [32]byte

func (v ymm) i16(p int) int16 { return int16(uint16(v[2*p]) | uint16(v[2*p+1])<<8) }

func (v *ymm) setI16(p int, x int16) { v[2*p], v[2*p+1] = byte(x), byte(uint16(x)>>8) }

// srli16 is _mm256_srli_epi16: each 16-bit lane shifted right by k.
func (v ymm) srli16(k uint) (r ymm) {
	for p := range 16 {
		r.setI16(p, int16(uint16(v.i16(p))>>k))
	}
	return r
}

// slli16 is _mm256_slli_epi16.
func (v ymm) slli16(k uint) (r ymm) {
	for p := range 16 {
		r.setI16(p, int16(uint16(v.i16(p))<<k))
	}
	return r
}

// ymmOp applies a byte operation (and, add_epi8, subs_epu8, avg_epu8).
func (v ymm) ymmOp(u ymm, op func(a, b byte) byte) (r ymm) {
	for i := range r {
		r[i] = op(v[i], u[i])
	}
	return r
}

func splat8(b byte) (r ymm) {
	for i := range r {
		r[i] = b
	}
	return r
}

func and8(a, b byte) byte  { return a & b }
func add8(a, b byte) byte  { return a + b }
func subs8(a, b byte) byte { return byte(max(int(a)-int(b), 0)) }
func avg8(a, b byte) byte  { return byte((int(a) + int(b) + 1) >> 1) }

// maddubs is _mm256_maddubs_epi16: unsigned bytes of v times signed bytes
// of y, adjacent pairs added with signed saturation.
func (v ymm) maddubs(y ymm) (r ymm) {
	for p := range 16 {
		s := int32(v[2*p])*int32(int8(y[2*p])) + int32(v[2*p+1])*int32(int8(y[2*p+1]))
		r.setI16(p, int16(min(max(s, -32768), 32767)))
	}
	return r
}

// addw and subw are _mm256_add_epi16 and _mm256_sub_epi16 (wrapping).
func (v ymm) addw(u ymm) (r ymm) {
	for p := range 16 {
		r.setI16(p, v.i16(p)+u.i16(p))
	}
	return r
}

func (v ymm) subw(u ymm) (r ymm) {
	for p := range 16 {
		r.setI16(p, v.i16(p)-u.i16(p))
	}
	return r
}

// tq1Digits is the AVX2 trit extraction of ggml_vec_dot_tq1_0_q8_K: q*3^n
// already in the bytes; subs_epu8 1, avg_epu8(q, avg_epu8(q, 0)), srli 6,
// and 3.
func tq1Digits(q ymm) ymm {
	q = q.ymmOp(splat8(1), subs8)
	q = q.ymmOp(q.ymmOp(ymm{}, avg8), avg8)
	return q.srli16(6).ymmOp(splat8(3), and8)
}

// refDotTernaryAVX2 ports ggml_vec_dot_tq1_0_q8_K and
// ggml_vec_dot_tq2_0_q8_K (arch/x86/quants.c, __AVX2__) instruction by
// instruction on emulated registers.
func refDotTernaryAVX2(typ gguf.Type, n int, w, a []byte) float32 {
	var sumf [8]float32
	load := func(b []byte) (r ymm) { copy(r[:], b); return r }
	times3 := func(v ymm) ymm { return v.ymmOp(v.ymmOp(v, add8), add8) }
	times9 := func(v ymm) ymm { return v.slli16(3).ymmOp(splat8(0xf8), and8).ymmOp(v, add8) }
	for i := 0; i < n/256; i++ {
		y := a[i*q8KBlockBytes:]
		qy := func(off int) ymm { return load(y[4+off:]) }
		var sumi0 ymm
		var dx float32
		if typ == gguf.TypeTQ1_0 {
			x := w[i*54:]
			var sumi1, sumi2 ymm
			qx0 := load(x[0:32])
			qx1 := times3(qx0)
			qx2 := times9(qx0)
			qx3 := times9(qx1)
			qx4 := times9(qx2)
			m0, m1 := tq1Digits(qx0).maddubs(qy(0)), tq1Digits(qx1).maddubs(qy(32))
			m2, m3 := tq1Digits(qx2).maddubs(qy(64)), tq1Digits(qx3).maddubs(qy(96))
			m4 := tq1Digits(qx4).maddubs(qy(128))
			sumi0 = sumi0.addw(m0.addw(m1))
			sumi1 = sumi1.addw(m2.addw(m3))
			sumi2 = sumi2.addw(m4)

			var lo ymm // the 16 bytes qs[32:48] in the low half
			copy(lo[:16], x[32:48])
			l1, l2 := times3(lo), times9(lo)
			l3, l4 := times9(l1), times9(l2)
			pow3 := [4]uint16{1, 3, 9, 27}
			var qx5 [16]byte
			for k := range qx5 {
				qx5[k] = byte(uint16(x[48+k%4]) * pow3[k/4] & 0xff)
			}
			var qx01, qx23, qx45 ymm
			copy(qx01[:16], lo[:16])
			copy(qx01[16:], l1[:16])
			copy(qx23[:16], l2[:16])
			copy(qx23[16:], l3[:16])
			copy(qx45[:16], l4[:16])
			copy(qx45[16:], qx5[:])
			sumi0 = sumi0.addw(tq1Digits(qx01).maddubs(qy(160)))
			sumi1 = sumi1.addw(tq1Digits(qx23).maddubs(qy(192)))
			sumi2 = sumi2.addw(tq1Digits(qx45).maddubs(qy(224)))

			ysum := load(y[260:292])
			sumi0 = sumi0.subw(ysum)
			sumi0 = sumi0.addw(sumi1.addw(sumi2))
			dx = FP16ToF32(binary.LittleEndian.Uint16(x[52:]))
		} else {
			x := w[i*66:]
			var sumi1 ymm
			for j := 0; j < 64; j += 32 {
				qx0 := load(x[j : j+32])
				qx1, qx2, qx3 := qx0.srli16(2), qx0.srli16(4), qx0.srli16(6)
				three := splat8(3)
				qx0, qx1, qx2, qx3 = qx0.ymmOp(three, and8), qx1.ymmOp(three, and8), qx2.ymmOp(three, and8), qx3.ymmOp(three, and8)
				m0, m1 := qx0.maddubs(qy(j*4)), qx1.maddubs(qy(j*4+32))
				m2, m3 := qx2.maddubs(qy(j*4+64)), qx3.maddubs(qy(j*4+96))
				sumi0 = sumi0.addw(m0.addw(m1))
				sumi1 = sumi1.addw(m2.addw(m3))
			}
			ysum := load(y[260:292])
			sumi0 = sumi0.addw(sumi1)
			sumi0 = sumi0.subw(ysum)
			dx = FP16ToF32(binary.LittleEndian.Uint16(x[64:]))
		}
		d := math.Float32frombits(binary.LittleEndian.Uint32(y)) * dx
		for t := range sumf { // _mm256_madd_epi16(sumi0, 1), cvtepi32_ps, fmadd
			lane := int32(sumi0.i16(2*t)) + int32(sumi0.i16(2*t+1))
			sumf[t] = fma32(float32(lane), d, sumf[t])
		}
	}
	return hsum8(&sumf)
}

// TestLowbitDotRandomBytes compares the dots with the literal ggml ports on
// random blocks (every code pattern, TQ1_0 bytes >= 243 and TQ2_0/Q2_0
// code 3 included), with finite random scales so results compare by bits.
func TestLowbitDotRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	fp16 := func(b []byte) { // a random finite fp16 scale, either sign
		h := F32ToFP16(float32(rng.NormFloat64()))
		b[0], b[1] = byte(h), byte(h>>8)
	}
	for _, typ := range lowbitTypes {
		f, _ := Lookup(typ)
		n := 1024
		if typ == gguf.TypeMXFP4 {
			n += 32 // an odd block count: the scalar tail
		}
		wb, _ := typ.RowBytes(n)
		ab, _ := f.VecDot.RowBytes(n)
		w, a := make([]byte, wb), make([]byte, ab)
		for iter := 0; iter < 200; iter++ {
			for i := range w {
				w[i] = byte(rng.Uint32())
			}
			for i := range a {
				a[i] = byte(rng.Uint32())
			}
			bb := typ.BlockBytes()
			for i := 0; i < len(w); i += bb {
				switch typ {
				case gguf.TypeQ1_0, gguf.TypeQ2_0:
					fp16(w[i:])
				case gguf.TypeMXFP4: // a finite scale, 2^-16 .. 2^16
					w[i] = byte(112 + rng.IntN(33))
				case gguf.TypeTQ1_0:
					fp16(w[i+52:])
				case gguf.TypeTQ2_0:
					fp16(w[i+64:])
				}
			}
			if f.VecDot == gguf.TypeQ8_0 {
				for i := 0; i < len(a); i += q8_0BlockBytes {
					fp16(a[i:])
					// Q8_0 codes are -127..127 (quantize_row_q8_0); the
					// x86 code's sign_epi8 would wrap a -128.
					for j := i + 2; j < i+q8_0BlockBytes; j++ {
						if a[j] == 0x80 {
							a[j] = 0x81
						}
					}
				}
			} else {
				for i := 0; i < len(a); i += q8KBlockBytes {
					binary.LittleEndian.PutUint32(a[i:], math.Float32bits(float32(rng.NormFloat64())))
				}
			}
			got, want := f.Dot(n, w, a), refDotLowbit(typ, n, w, a)
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("%v: dot = %g, literal ggml port %g", typ, got, want)
			}
		}
	}
}
