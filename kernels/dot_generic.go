//go:build !amd64 || purego

package kernels

// This build has only the pure-Go kernels: no variant is registered, so
// every dot product runs Format.Dot.

// cpuRelax is one poll of a spin-wait loop (PAUSE on amd64).
func cpuRelax() {}

// readBytes returns the XOR of p's 64-bit words (len(p) a multiple of 256).
func readBytes(p []byte) uint64 { return readBytesGo(p) }

// f32ISA names the instruction set of the f32 vector functions.
func f32ISA() string { return "go" }

// VecDotF32 is ggml_vec_dot_f32 on AVX-512 (vecDotF32Go): four 16-lane
// FMA accumulators, _mm512_reduce_add_ps, then the tail in order; the dot
// llama.cpp uses for F32 weights with one token and for attention's q*k.
func VecDotF32(x, y []float32) float32 { return vecDotF32Go(x, y) }

// dotF32W is VecDotF32 with the first operand read from F32 row bytes.
func dotF32W(w []byte, x []float32) float32 { return dotF32WGo(w, x) }

// dotF32WBatch is llamafile's tinyBLAS on F32 (dotF32WBatchGo).
func dotF32WBatch(w []byte, x []float32) float32 { return dotF32WBatchGo(w, x) }

// FMAAxpy sets acc[i] = fma(x[i], p, acc[i]) for every i, each rounded
// once to float32 as vfmadd231ps does (len(x) >= len(acc)).
func FMAAxpy(acc, x []float32, p float32) { fmaAxpyGo(acc, x, p) }

// DotF16Lanes16 returns the dot product of q and the F16 values k over the
// first len(q)&^15 elements as llamafile's tinyBLAS sums it: each product
// rounded to float32 and added to lane i mod 16, then
// _mm512_reduce_add_ps. len(k) >= that length.
func DotF16Lanes16(q []float32, k []uint16) float32 { return dotF16Lanes16Go(q, k) }

// DotF16Lanes64 is the vector part of ggml_vec_dot_f16 on AVX-512 over the
// first len(q)&^63 elements: four 16-lane accumulators (lane i mod 64),
// each product rounded and added, combined (a0+a2)+(a1+a3) and reduced
// with _mm512_reduce_add_ps. len(k) >= that length.
func DotF16Lanes64(q []float32, k []uint16) float32 { return dotF16Lanes64Go(q, k) }

// AxpyF16 sets acc[i] += float32(p * v[i]) for every i (v F16 values,
// the product rounded before the add). len(v) >= len(acc).
func AxpyF16(acc []float32, v []uint16, p float32) { axpyF16Go(acc, v, p) }

// LaneSum reduces lane accumulators: acc holds width (16 or 64) rows of
// vd values, and out[d] (d < len(out) <= vd) becomes _mm512_reduce_add_ps
// over the 16 lanes acc[l*vd+d], after, for 64 rows, r[l] =
// (a[l]+a[32+l]) + (a[16+l]+a[48+l]) (ggml_vec_dot_f32's four
// accumulators combined).
func LaneSum(out, acc []float32, vd, width int) { laneSumGo(out, acc, vd, width) }

// ExpBlock16 sets s[j] = ggml_v_expf(s[j] - mx) for the len(s) <= 16
// values of one block of ggml_vec_soft_max_f32 (ggmlfp.VExpf) and returns
// the _mm512_reduce_add_ps of the block (zeros past len(s)).
func ExpBlock16(s []float32, mx float32) float32 { return expBlock16Go(s, mx) }

// SwigluBlocks sets gate[i] = ggml_v_silu(gate[i]) * up[i] for the first
// len(gate)&^15 values (ggml_vec_swiglu_f32's vector part, ggmlfp.VSilu)
// and returns that count; the caller does the scalar tail.
func SwigluBlocks(gate, up []float32) int {
	swigluGo(gate, up)
	return len(gate) &^ 15
}

// DotF16Lanes16Rows sets out[j] = DotF16Lanes16(q, k[j*kstride:]) for
// every j < len(out): the scores of one query against consecutive keys.
func DotF16Lanes16Rows(out, q []float32, k []uint16, kstride int) {
	dotF16Lanes16RowsGo(out, q, k, kstride)
}

// AxpyF16Rows does AxpyF16(acc[l*vd:(l+1)*vd], v[j*vstride:], p[j]) for
// j = 0, 1, .. len(p)-1 in order, with l = j & (width-1) (width a power of
// two): the value rows of one head weighted into lane accumulators.
func AxpyF16Rows(acc []float32, vd, width int, v []uint16, vstride int, p []float32) {
	axpyF16RowsGo(acc, vd, width, v, vstride, p)
}

// ToF16 sets dst[i] to the F16 bits of src[i] (rounded to nearest even,
// as F16C and ggml convert) for i < len(src); len(dst) >= len(src).
func ToF16(dst []uint16, src []float32) { toF16Go(dst, src) }

// RoundF16 rounds every value of x to F16 precision in place (x[i] =
// FP16ToF32(F32ToFP16(x[i]))).
func RoundF16(x []float32) { roundF16Go(x) }
