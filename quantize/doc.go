// Package quantize converts the tensors of a GGUF model to other ggml
// types the way llama.cpp's quantize tool does (llama_model_quantize in
// src/llama-quant.cpp).
//
// It owns three things:
//
//   - the presets (Q4_K_M, Q6_K, IQ4_XS, MXFP4_MOE, ...): llama.cpp's
//     llama_ftype values, their base types and names (ftype.go);
//   - the per-tensor type choice of a preset (policy.go): which tensors are
//     never quantized (norms, 1-D tensors, ffn_gate_inp, ...), which get more
//     bits (output, token embedding, attn_v, ffn_down by layer, the 8-expert
//     rules), and the fallbacks for rows that are not a whole number of
//     blocks — ported rule by rule, so a plan names the same types as
//     llama.cpp for the same file;
//   - the conversion itself: a Converter that turns f32 rows into any
//     quantized type on several goroutines (the bytes do not depend on the
//     thread count), and Quantize, which streams a whole model through it to
//     a gguf.Writer.
//
// The block formats themselves live in kernels/; quantize calls their
// Quantize and Dequantize functions and adds no arithmetic of its own, so
// its output is byte-identical to llama.cpp's for the deterministic types.
// synth/ uses the same plans to write synthetic models in any preset.
package quantize
