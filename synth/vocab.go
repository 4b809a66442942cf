package synth

import (
	"fmt"

	"github.com/inference-x/inference-x/gguf"
)

// Token types of a SentencePiece vocabulary (llama.cpp's llama_token_type).
const (
	tokenNormal  int32 = 1
	tokenUnknown int32 = 2
	tokenControl int32 = 3
	tokenByte    int32 = 6
)

// MinVocab is the smallest vocabulary synth writes: <unk>, <s>, </s> and the
// 256 byte tokens every SentencePiece vocabulary needs for byte fallback.
const MinVocab = 3 + 256

// spmSpace is SentencePiece's word-boundary marker (U+2581), which stands
// for a space in front of a piece.
const spmSpace = "\u2581"

// commonWords seed the pieces after the single characters, so English text
// (the demo prompts, the test strings) tokenizes into words.
var commonWords = []string{
	"the", "of", "and", "to", "in", "is", "was", "it", "that", "he", "she", "for", "on", "with", "as",
	"his", "her", "they", "at", "be", "this", "from", "had", "by", "not", "but", "what", "all", "were",
	"when", "we", "there", "can", "an", "your", "which", "their", "said", "if", "do", "will", "each",
	"about", "how", "up", "out", "them", "then", "many", "some", "so", "these", "would", "other",
	"into", "has", "more", "two", "like", "time", "no", "way", "could", "people", "my", "than",
	"first", "been", "who", "its", "now", "find", "long", "down", "day", "did", "get", "come", "made",
	"may", "part", "over", "new", "after", "also", "once", "upon", "little", "model", "quick", "brown",
	"fox", "jumps", "lazy", "dog", "one", "a", "I", "you", "are", "or", "have", "there", "use", "word",
	"water", "call", "number", "sound", "know", "make", "see", "look", "write", "go", "engine",
	"expert", "experts", "token", "tokens", "weights", "loads", "prompt", "attention", "need",
	"mixture", "routes", "each", "beginning", "computes", "logits", "Hello", "world", "The", "Once",
	"In", "It", "He", "She", "They", "We", "There", "This",
}

// Vocab is a SentencePiece-style ("llama") vocabulary as GGUF stores it.
type Vocab struct {
	Tokens []string
	Scores []float32
	Types  []int32
}

// BuildVocab returns a deterministic SentencePiece-style vocabulary of n
// tokens: <unk> <s> </s>, the byte tokens <0x00>..<0xFF>, the printable
// ASCII characters alone and after the word marker, common English words,
// then generated lower-case pieces (two letters, three, ...) until n.
// Scores fall with the index, as SentencePiece orders pieces by
// likelihood, so longer common pieces merge last.
func BuildVocab(n int) (Vocab, error) {
	if n < MinVocab {
		return Vocab{}, fmt.Errorf("synth: vocabulary of %d tokens is too small: it needs at least %d (<unk>, <s>, </s> and 256 byte tokens)", n, MinVocab)
	}
	v := Vocab{
		Tokens: make([]string, 0, n),
		Scores: make([]float32, 0, n),
		Types:  make([]int32, 0, n),
	}
	seen := make(map[string]bool, n)
	add := func(s string, typ int32) bool {
		if len(v.Tokens) >= n || seen[s] {
			return len(v.Tokens) < n
		}
		seen[s] = true
		score := float32(0)
		if typ == tokenNormal {
			score = -float32(len(v.Tokens) - MinVocab)
		}
		v.Tokens = append(v.Tokens, s)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
		return len(v.Tokens) < n
	}
	add("<unk>", tokenUnknown)
	add("<s>", tokenControl)
	add("</s>", tokenControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), tokenByte)
	}
	more := add(spmSpace, tokenNormal)
	for c := byte('!'); more && c <= '~'; c++ {
		more = add(string(c), tokenNormal)
	}
	for c := byte('!'); more && c <= '~'; c++ {
		more = add(spmSpace+string(c), tokenNormal)
	}
	for _, w := range commonWords {
		if !more {
			break
		}
		more = add(spmSpace+w, tokenNormal) && add(w, tokenNormal)
	}
	// generated pieces: every lower-case word of length 2, 3, ... with and
	// without the word marker, in order
	for length := 2; more; length++ {
		word := make([]byte, length)
		var gen func(pos int)
		gen = func(pos int) {
			if !more {
				return
			}
			if pos == length {
				more = add(spmSpace+string(word), tokenNormal) && add(string(word), tokenNormal)
				return
			}
			for c := byte('a'); c <= 'z' && more; c++ {
				word[pos] = c
				gen(pos + 1)
			}
		}
		gen(0)
	}
	return v, nil
}

// vocabKV returns the tokenizer.ggml.* keys llama.cpp reads for a
// SentencePiece vocabulary.
func vocabKV(v Vocab) []gguf.KV {
	kv := func(k string, x any) gguf.KV { return gguf.KV{Key: k, Value: gguf.MustValue(x)} }
	return []gguf.KV{
		kv("tokenizer.ggml.model", "llama"),
		kv("tokenizer.ggml.tokens", v.Tokens),
		kv("tokenizer.ggml.scores", v.Scores),
		kv("tokenizer.ggml.token_type", v.Types),
		kv("tokenizer.ggml.bos_token_id", uint32(1)),
		kv("tokenizer.ggml.eos_token_id", uint32(2)),
		kv("tokenizer.ggml.unknown_token_id", uint32(0)),
		kv("tokenizer.ggml.add_bos_token", true),
		kv("tokenizer.ggml.add_eos_token", false),
	}
}
