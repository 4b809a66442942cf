package grammar

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/inference-x/inference-x/tokenizer"
)

// Vocab is a vocabulary prepared for masking: every token's piece (the
// bytes it adds to the output) in a byte trie stored in preorder, so one
// walk over the trie visits each shared prefix once. Immutable, safe for
// concurrent use.
type Vocab struct {
	n      int
	pieces [][]byte
	eog    []int32

	// Trie nodes in preorder: the byte on the edge into node i, its depth
	// (1 for a first byte), the index past its subtree, and the tokens
	// whose piece ends there: toks[tokOff[i]:tokOff[i+1]].
	nodeByte  []byte
	nodeDepth []uint16
	nodeEnd   []int32
	tokOff    []int32
	toks      []int32
	nodeTok   []int32 // the one token ending at a node, noToken or manyTokens

	names func(text string) (int32, bool) // token by its text, for <think>

	maxDepth int
}

// Values of Vocab.nodeTok besides a token id.
const (
	noToken    = -1
	manyTokens = -2
)

// maxPiece bounds the bytes of one token piece.
const maxPiece = 1 << 12

// NewVocab prepares pieces (indexed by token id) and the ids that end
// generation. Tokens with an empty piece (control tokens) are never
// allowed except the end-of-generation ones, which are allowed exactly
// when the grammar can end.
func NewVocab(pieces [][]byte, eog []int32) (*Vocab, error) {
	v := &Vocab{n: len(pieces), pieces: pieces}
	for _, id := range eog {
		if id < 0 || int(id) >= len(pieces) {
			return nil, fmt.Errorf("grammar: end-of-generation token %d outside the vocabulary of %d", id, len(pieces))
		}
		v.eog = append(v.eog, id)
	}
	order := make([]int32, 0, len(pieces))
	for id, p := range pieces {
		if len(p) > maxPiece {
			return nil, fmt.Errorf("grammar: token %d has a piece of %d bytes, more than %d", id, len(p), maxPiece)
		}
		if len(p) > 0 && !slices.Contains(v.eog, int32(id)) {
			order = append(order, int32(id))
		}
	}
	slices.SortFunc(order, func(a, b int32) int { return bytes.Compare(pieces[a], pieces[b]) })
	var path []int32
	var prev []byte
	for _, id := range order {
		p := pieces[id]
		l := 0
		for l < len(prev) && l < len(p) && prev[l] == p[l] {
			l++
		}
		for len(path) > l {
			v.nodeEnd[path[len(path)-1]] = int32(len(v.nodeByte))
			path = path[:len(path)-1]
		}
		for k := l; k < len(p); k++ {
			path = append(path, int32(len(v.nodeByte)))
			v.nodeByte = append(v.nodeByte, p[k])
			v.nodeDepth = append(v.nodeDepth, uint16(k+1))
			v.nodeEnd = append(v.nodeEnd, 0)
			v.tokOff = append(v.tokOff, int32(len(v.toks)))
		}
		v.toks = append(v.toks, id)
		v.maxDepth = max(v.maxDepth, len(p))
		prev = p
	}
	for _, n := range path {
		v.nodeEnd[n] = int32(len(v.nodeByte))
	}
	v.tokOff = append(v.tokOff, int32(len(v.toks)))
	v.nodeTok = make([]int32, len(v.nodeByte))
	for i := range v.nodeTok {
		switch v.tokOff[i+1] - v.tokOff[i] {
		case 0:
			v.nodeTok[i] = noToken
		case 1:
			v.nodeTok[i] = v.toks[v.tokOff[i]]
		default:
			v.nodeTok[i] = manyTokens
		}
	}
	return v, nil
}

// VocabFromTokenizer prepares t's vocabulary: each token's piece is the
// tokenizer's own rendering of the single token (TokenToPiece without
// special: SentencePiece ▁ as spaces, byte-fallback <0xAB> tokens as the
// byte, GPT-2 byte-level text as the bytes it stands for, control tokens
// empty), and the end-of-generation tokens are t.EOG().
func VocabFromTokenizer(t *tokenizer.Tokenizer) (*Vocab, error) {
	pieces := make([][]byte, t.NumTokens())
	for id := range pieces {
		pieces[id] = []byte(t.TokenToPiece(int32(id), false))
	}
	v, err := NewVocab(pieces, t.EOG())
	if err != nil {
		return nil, err
	}
	v.names = t.TokenID
	return v, nil
}

// tokenID finds a token by its text (VocabFromTokenizer only).
func (v *Vocab) tokenID(text string) (int32, bool) {
	if v.names == nil {
		return 0, false
	}
	return v.names(text)
}

// Size is the number of tokens.
func (v *Vocab) Size() int { return v.n }

// Piece returns the bytes of token id (nil outside the vocabulary).
func (v *Vocab) Piece(id int32) []byte {
	if id < 0 || int(id) >= v.n {
		return nil
	}
	return v.pieces[id]
}

// IsEOG reports whether id ends generation.
func (v *Vocab) IsEOG(id int32) bool { return slices.Contains(v.eog, id) }

// MaskWords is the length in uint64 words of a mask for this vocabulary.
func (v *Vocab) MaskWords() int { return (v.n + 63) / 64 }
