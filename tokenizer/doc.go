// Package tokenizer turns text into token ids and back for GGUF models,
// token for token as llama.cpp does (llama_tokenize, llama_detokenize,
// llama_token_to_piece; the reference is llama.cpp's llama-vocab.cpp and
// unicode.cpp of the release the project's goldens come from).
//
// New builds a Tokenizer from a file's tokenizer.ggml.* metadata; only the
// vocabulary is read, so vocab-only files work. Two vocabulary types are
// supported:
//
//   - "llama": SentencePiece-style. Tokens with scores, spaces spelled ▁,
//     a space prefixed to each text fragment (add_space_prefix), byte
//     fallback to <0xNN> tokens for characters without a token.
//   - "gpt2": byte-level BPE. Merges ranked by their order, and the
//     pre-tokenizer named by tokenizer.ggml.pre that cuts the text into
//     words first (SupportedPreTokenizers lists the names: default, gpt-2,
//     llama-bpe, qwen2, qwen35, deepseek-v3, deepseek-llm, kimi-k2 and the
//     aliases llama.cpp treats alike).
//
// Anything else is an error wrapping ErrUnsupported that names the model
// or pre-tokenizer and lists what is supported.
//
// Special tokens follow llama.cpp: the ids of BOS, EOS, EOT, PAD, ... come
// from the metadata or are recognised by their text (<|im_end|>, ...);
// IsEOG is llama.cpp's end-of-generation set. Encode with parseSpecial
// splits control tokens out of the text, longest first; user-defined
// tokens are split out always. TokenText gives any token's raw text for
// chat templates and servers.
//
// Decode and Detokenize reproduce llama_detokenize, including its space
// clean-up for vocabularies with clean_spaces; a Decoder does the same
// incrementally for streaming and never returns part of a UTF-8
// character.
//
// A Tokenizer is immutable and safe for concurrent use. Encode keeps its
// scratch buffers, and a cache of recently merged words, in a pool.
//
// Where this package knowingly differs from llama.cpp:
//
//   - Code point classes come from Go's unicode tables (Unicode 15.0) plus
//     the three ranges Unicode 15.1 assigned that llama.cpp's table
//     (generated from 15.1) has; a test compares every code point with
//     llama.cpp's table when its source is installed.
//   - When several tokens could be the auto-detected EOT (or EOM, FIM)
//     token, llama.cpp takes the first its hash map yields; this package
//     takes the first in llama.cpp's list of texts. The two agree on every
//     vocabulary tested.
//   - Special tokens of equal length are split out in id order; llama.cpp
//     sorts them with an unstable sort. This matters only if two such
//     tokens overlap in a text.
//   - Inputs on which llama.cpp throws instead of returning tokens get a
//     result instead: UTF-8 sequences decoding above U+10FFFF count as
//     malformed bytes (U+FFFD), and a SentencePiece vocabulary without a
//     byte token for some byte emits the unknown token.
//   - Detokenizing an id outside the vocabulary yields nothing (llama.cpp
//     throws).
package tokenizer
