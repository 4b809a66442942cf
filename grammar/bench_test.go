package grammar

import (
	"testing"
)

// benchSchema is a typical structured-output schema.
const benchSchema = `{"type":"object","properties":{
 "name":{"type":"string"},
 "age":{"type":"integer","minimum":0,"maximum":150},
 "email":{"type":"string","maxLength":40},
 "tags":{"type":"array","items":{"type":"string"},"maxItems":8},
 "address":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","city"]},
 "active":{"type":"boolean"}},
 "required":["name","age","tags"]}`

// benchDoc is a document of benchSchema, decoded token by token.
const benchDoc = `{"name":"Ada Lovelace, Countess of Lovelace","age":36,"email":"ada@analytical.engine","tags":["mathematics","poetry of science","notes on the engine"],"address":{"street":"12 St James's Square","city":"London","zip":"10001"},"active":true}`

func benchMatcher(b *testing.B) (*Matcher, *Vocab) {
	v := loadVocab(b, "testdata/tokenizer/qwen3-bpe.gguf")
	g, err := FromJSONSchema([]byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	return g.NewMatcher(v), v
}

// BenchmarkMask times one Mask on the 151936-token Qwen3 vocabulary in a
// given state: cold walks the trie (cache cleared every time), warm is a
// state seen before.
func BenchmarkMask(b *testing.B) {
	states := []struct{ name, prefix string }{
		{"mid-object", `{"name":"Ada","age":36,`},
		{"mid-string", `{"name":"Ada Lov`},
		{"number", `{"name":"Ada","age":`},
	}
	for _, st := range states {
		for _, cold := range []bool{true, false} {
			name := st.name + "/warm"
			if cold {
				name = st.name + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				m, v := benchMatcher(b)
				if err := m.AcceptString(st.prefix); err != nil {
					b.Fatal(err)
				}
				mask := make([]uint64, v.MaskWords())
				m.Mask(mask)
				b.ReportAllocs()
				b.ResetTimer()
				stop := cpuTimer(b)
				for range b.N {
					if cold {
						clear(m.cache)
					}
					m.Mask(mask)
				}
				stop(b.N)
			})
		}
	}
}

// BenchmarkGenerate replays benchDoc as Qwen3 tokens: per token one Mask
// (as the sampler would) and one Accept; ns/op is per token, with the
// cache as a real generation sees it (a fresh Matcher per document).
func BenchmarkGenerate(b *testing.B) {
	tok := loadTokenizer(b, "testdata/tokenizer/qwen3-bpe.gguf")
	ids := tok.Encode(benchDoc, false, false)
	_, v := benchMatcher(b)
	g, err := FromJSONSchema([]byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	mask := make([]uint64, v.MaskWords())
	b.ReportAllocs()
	b.ResetTimer()
	stop := cpuTimer(b)
	n := 0
	for n < b.N {
		m := g.NewMatcher(v)
		for _, id := range ids {
			m.Mask(mask)
			if !Allowed(mask, id) {
				b.Fatalf("token %d %q not allowed", id, v.Piece(id))
			}
			if err := m.AcceptToken(id); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	stop(n)
	b.ReportMetric(float64(len(ids)), "tokens/doc")
}

// BenchmarkNewVocab times building the trie of Qwen3's vocabulary (once
// per model in a server).
func BenchmarkNewVocab(b *testing.B) {
	tok := loadTokenizer(b, "testdata/tokenizer/qwen3-bpe.gguf")
	pieces := make([][]byte, tok.NumTokens())
	for id := range pieces {
		pieces[id] = []byte(tok.TokenToPiece(int32(id), false))
	}
	b.ReportAllocs()
	for range b.N {
		if _, err := NewVocab(pieces, tok.EOG()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyMask times setting the disallowed logits of Qwen3's
// vocabulary to -Inf in the mid-object state (few tokens allowed).
func BenchmarkApplyMask(b *testing.B) {
	m, v := benchMatcher(b)
	if err := m.AcceptString(`{"name":"Ada","age":36,`); err != nil {
		b.Fatal(err)
	}
	mask := make([]uint64, v.MaskWords())
	m.Mask(mask)
	logits := make([]float32, v.Size())
	b.ReportAllocs()
	stop := cpuTimer(b)
	for range b.N {
		ApplyMask(logits, mask)
	}
	stop(b.N)
}
