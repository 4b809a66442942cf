// Package kernels holds every ggml weight format Inference-X reads: block
// layouts, bit-exact dequantization and quantization, and the dot products
// the forward pass is made of.
//
// Each format is a Format value registered by the file that implements it
// (q4_0.go, q4_k.go, iq2_xxs.go, ...). The integer dot path follows ggml's
// CPU backend: the activation row is first quantized to the format's
// companion type (Format.VecDot: Q8_0, Q8_1, Q8_K, F16, BF16 or F32) and the
// dot product then runs on integers with one scale per block; this is what
// makes logits comparable to llama.cpp's. The f32 path (DotF32) decodes the
// weights in registers and multiplies them by f32 activations with no
// intermediate buffer.
//
// On amd64 the hot paths run generated assembly (dot_amd64.s, from the
// _asm module): the rows kernels behind MatMul and Format.Dot, the
// activation quantizers, and the f32 vector functions of attention and
// the FFN. Each gives the same bits as the pure-Go code, which the purego
// build tag selects; see README.md.
//
// The package does not know about tensors, files or models: it works on
// []byte rows and []float32 vectors. Layout facts (block size, bytes per
// block) come from gguf's type table.
package kernels
