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
