package grammar_test

import (
	"fmt"
	"math"

	"github.com/inference-x/inference-x/grammar"
)

// The sampler's loop: mask the logits, sample, accept; stop on an
// end-of-generation token (allowed only when the grammar can end).
func Example() {
	pieces := [][]byte{[]byte("</s>"), []byte(`{"`), []byte(`ok`), []byte(`":`), []byte(`true`), []byte(`}`), []byte(`hello`)}
	eos := int32(0)
	pieces[eos] = nil // control tokens have no text
	vocab, err := grammar.NewVocab(pieces, []int32{eos})
	if err != nil {
		panic(err)
	}
	g, err := grammar.FromJSONSchema([]byte(`{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}`))
	if err != nil {
		panic(err)
	}
	m := g.NewMatcher(vocab)
	mask := make([]uint64, vocab.MaskWords())
	logits := make([]float32, len(pieces))
	var out []byte
	for {
		for i := range logits {
			logits[i] = float32(i) // a model that likes the last tokens best
		}
		m.Mask(mask)
		grammar.ApplyMask(logits, mask)
		best := int32(0) // greedy sampling
		for i, l := range logits {
			if l > logits[best] {
				best = int32(i)
			}
		}
		if math.IsInf(float64(logits[best]), -1) {
			panic("nothing allowed")
		}
		if vocab.IsEOG(best) {
			break
		}
		if err := m.AcceptToken(best); err != nil {
			panic(err)
		}
		out = append(out, vocab.Piece(best)...)
	}
	fmt.Println(string(out))
	// Output: {"ok":true}
}
