package kernels

// Batch invariance.
//
// llama.cpp picks a product's kernel by the number of tokens in it:
// llamafile's tinyBLAS for F32, F16 and BF16 weights and batched dots for
// IQ4_NL and the IQ types with two or more (eight) tokens, AMX tiles for
// Q4_K and Q6_K with eight (sixteen) or more; each rounds differently from
// vec_dot, so a row's result depends on how many rows share its product:
// on what else is decoded at the same time and on how a prompt is
// chunked. In the batch-invariant mode (the default) every product runs
// the per-row kernel whatever its token count (vec_dot's arithmetic, one
// row at a time: the rows kernels or Format.Dot / DotF32), so each output
// row is a function of that row's inputs only. Off, the kernels follow
// llama.cpp's choice (and the tiles, where the CPU has AMX and SetTiles
// allows them), which the llama.cpp parity tests compare bit for bit.

// batchInvariant is the mode (SetBatchInvariant).
var batchInvariant = true

// SetBatchInvariant switches the batch-invariant mode on (the default) or
// off. On, products never take a kernel chosen by their token count (no
// tinyBLAS, no batched IQ dots, no AMX tiles), and BatchInvariant tells
// the model to keep its attention in one lane order. Not safe to call
// while kernels run.
func SetBatchInvariant(on bool) { batchInvariant = on }

// BatchInvariant reports whether the batch-invariant mode is on.
func BatchInvariant() bool { return batchInvariant }
