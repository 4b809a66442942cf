// Package synth writes synthetic GGUF models: every architecture the
// engine runs (llama dense and Mixtral-style MoE, qwen2, qwen3, qwen2moe,
// qwen3moe, deepseek2 with MLA), any shape, any quant type or llama.cpp
// preset, with deterministic random weights of realistic scale and a small
// SentencePiece vocabulary, so tests, benchmarks and demos need no
// downloaded weights. Output streams to a writer in constant memory (two
// tensors at most) and is byte-for-byte reproducible from the seed,
// whatever the thread count.
//
// It also derives models from real ones: Upcycle turns a dense llama-family
// model into a Mixtral-style MoE whose experts are copies of the dense FFN.
//
// The per-tensor type choices, the conversion and the streaming come from
// quantize/; the block formats from kernels/. synth does not read or run
// models.
package synth
