// Package gguf reads and writes GGUF files, the model format of llama.cpp.
//
// Open memory-maps a file read-only and parses its header: metadata
// (typed accessors name the key and both types on a mismatch), tensor
// infos, and zero-copy views of every tensor's bytes into the mapping.
// Split models (NAME-00001-of-0000N.gguf) open as one. Every length in the
// header is checked against the file size before anything is allocated, so
// a corrupt or hostile file yields an error wrapping ErrFormat, never a
// panic or an allocation the file size does not justify.
//
// Writer streams a GGUF v3 file with llama.cpp's alignment and padding.
//
// The package owns the ggml type table (Type, TypeTraits) that kernels/
// builds on; it does not interpret tensors or model architectures.
package gguf
