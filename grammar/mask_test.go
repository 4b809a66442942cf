package grammar

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The automaton walk and the plain stack walk compute the same masks.
func TestMaskWalksAgree(t *testing.T) {
	v := loadVocab(t, "testdata/tokenizer/llama2-spm.gguf")
	cases := []struct{ src, prefix string }{
		{`root ::= "{" [ ]? "\"a\":" [ ]? ("true" | "false" | [0-9]+) "}"`, `{`},
		{`root ::= "é" [ぁ-ゟ]+ "!" | "\"" [^"]* "\""`, ``},
		{`root ::= "é" [ぁ-ゟ]+ "!"`, "é\xe3"},
		{`root ::= [a-z]{2,5} ("-" [a-z]{1,3})*`, `ab-c`},
	}
	for _, c := range cases {
		g, err := Parse(c.src)
		if err != nil {
			t.Fatal(err)
		}
		m := g.NewMatcher(v)
		if err := m.AcceptString(c.prefix); err != nil {
			t.Fatal(err)
		}
		a := make([]uint64, v.MaskWords())
		b := make([]uint64, v.MaskWords())
		if !m.walkAutomaton(a) {
			t.Fatal("automaton walk gave up")
		}
		m.walkScratch(b)
		if !slices.Equal(a, b) {
			t.Errorf("%s after %q: the walks differ", c.src, c.prefix)
		}
		n := 0
		for id := int32(0); int(id) < v.Size(); id++ {
			if Allowed(a, id) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s after %q: nothing allowed", c.src, c.prefix)
		}
	}
}

// Under a grammar of any text every token with text is allowed, EOG too
// once the grammar can end, control tokens never.
func TestMaskAnyText(t *testing.T) {
	v := loadVocab(t, "testdata/tokenizer/qwen3-bpe.gguf")
	g, err := Parse(`root ::= .*`)
	if err != nil {
		t.Fatal(err)
	}
	m := g.NewMatcher(v)
	mask := make([]uint64, v.MaskWords())
	m.Mask(mask)
	for id := int32(0); int(id) < v.Size(); id++ {
		p := v.Piece(id)
		want := v.IsEOG(id) || len(p) > 0 && utf8.Valid(p)
		if got := Allowed(mask, id); want && !got || len(p) == 0 && !v.IsEOG(id) && got {
			t.Fatalf("token %d %q: allowed %v", id, p, got)
		}
	}
}

// After warm-up a generation step (Mask, AcceptToken) allocates nothing.
func TestMaskNoAllocs(t *testing.T) {
	v := loadVocab(t, "testdata/tokenizer/llama2-spm.gguf")
	g, err := FromJSONSchema([]byte(`{"type":"object","properties":{"s":{"type":"string"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := g.NewMatcher(v)
	if err := m.AcceptString(`{"s":"`); err != nil {
		t.Fatal(err)
	}
	mask := make([]uint64, v.MaskWords())
	var ids []int32
	for id := int32(0); int(id) < v.Size() && len(ids) < 50; id++ {
		p := v.Piece(id)
		if len(p) > 1 && utf8.Valid(p) && !slices.ContainsFunc(p, func(b byte) bool { return b == '"' || b == '\\' || b < 0x20 }) {
			ids = append(ids, id)
		}
	}
	step := func() {
		for _, id := range ids {
			m.Mask(mask)
			if err := m.AcceptToken(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	step()
	if n := testing.AllocsPerRun(5, step); n != 0 {
		t.Errorf("%v allocations per %d tokens", n, len(ids))
	}
	if hits, _ := m.CacheStats(); hits == 0 {
		t.Error("no cache hits inside a string")
	}
}

// With tiny automaton limits the matcher keeps compacting and the walk
// falls back to plain stacks; the output stays valid.
func TestCompactLimits(t *testing.T) {
	defer func(n, s int) { maxNodes, maxStates = n, s }(maxNodes, maxStates)
	maxNodes, maxStates = 64, 4
	v := loadVocab(t, "models/stories260K/stories260K.gguf")
	for _, sc := range testSchemas[:10] {
		g, err := FromJSONSchema([]byte(sc.schema))
		if err != nil {
			t.Fatal(err)
		}
		schema, _ := decodeOrdered([]byte(sc.schema))
		out := sample(t, g, v, rand.New(rand.NewPCG(7, 7)), 30, true)
		doc, err := decodeOrdered(out)
		if err != nil {
			t.Fatalf("%s: %q: %v", sc.name, out, err)
		}
		if err := validate(schema, schema, doc, "#"); err != nil {
			t.Fatalf("%s: %q: %v", sc.name, out, err)
		}
	}
}

func TestApplyMask(t *testing.T) {
	logits := make([]float32, 130)
	mask := make([]uint64, 3)
	for _, id := range []int32{0, 63, 64, 129} {
		mask[id>>6] |= 1 << (id & 63)
	}
	mask[1] = math.MaxUint64 &^ 2 // 65 out, the rest of word 1 in
	ApplyMask(logits, mask)
	for i, l := range logits {
		want := Allowed(mask, int32(i))
		if got := !math.IsInf(float64(l), -1); got != want {
			t.Errorf("logit %d kept=%v, want %v", i, got, want)
		}
	}
}

// Matchers of one Grammar and one Vocab run concurrently (go test -race).
func TestConcurrentMatchers(t *testing.T) {
	v := loadVocab(t, "models/stories260K/stories260K.gguf")
	g, err := FromJSONSchema([]byte(testSchemas[5].schema))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte, 4)
	for i := range 4 {
		go func() {
			done <- sampleQuiet(g, v, uint64(i))
		}()
	}
	for range 4 {
		if out := <-done; !json.Valid(out) {
			t.Errorf("not JSON: %q", out)
		}
	}
}

// sampleQuiet is sample without a testing.T (for goroutines): uniform
// among allowed tokens, closing ones preferred after 30 tokens.
func sampleQuiet(g *Grammar, v *Vocab, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	m := g.NewMatcher(v)
	mask := make([]uint64, v.MaskWords())
	var out []byte
	for step := 0; step < 4000; step++ {
		m.Mask(mask)
		var allowed, closing []int32
		for id := int32(0); int(id) < v.Size(); id++ {
			if Allowed(mask, id) {
				allowed = append(allowed, id)
				if v.IsEOG(id) && step > 30 {
					return out
				}
				if bytes.ContainsAny(v.Piece(id), `"}]`) {
					closing = append(closing, id)
				}
			}
		}
		if len(allowed) == 0 {
			return nil
		}
		id := allowed[rng.IntN(len(allowed))]
		if step > 30 && len(closing) > 0 {
			id = closing[rng.IntN(len(closing))]
		}
		if v.IsEOG(id) {
			return out
		}
		if m.AcceptToken(id) != nil {
			return nil
		}
		out = append(out, v.Piece(id)...)
	}
	return nil
}

// Token references match the token itself, even a control token that has
// no text (llama.cpp's <[id]> and <text>).
func TestTokenReferences(t *testing.T) {
	tok := loadTokenizer(t, "testdata/tokenizer/qwen3-bpe.gguf")
	v := loadVocab(t, "testdata/tokenizer/qwen3-bpe.gguf")
	think, ok := tok.TokenID("<think>")
	if !ok {
		t.Fatal("no <think> in the Qwen3 vocabulary")
	}
	imEnd, _ := tok.TokenID("<|im_start|>")
	g, err := ParseForVocab(`root ::= <think> [a-z]+ </think> "ok" | <[`+strconv.Itoa(int(imEnd))+`]> "x"`, v)
	if err != nil {
		t.Fatal(err)
	}
	m := g.NewMatcher(v)
	mask := make([]uint64, v.MaskWords())
	m.Mask(mask)
	var allowed []int32
	for id := int32(0); int(id) < v.Size(); id++ {
		if Allowed(mask, id) {
			allowed = append(allowed, id)
		}
	}
	if !slices.Equal(allowed, []int32{imEnd, think}) && !slices.Equal(allowed, []int32{think, imEnd}) {
		t.Fatalf("allowed %v, want only <think> %d and <|im_start|> %d", allowed, think, imEnd)
	}
	if err := m.AcceptString("<think>"); err == nil {
		t.Fatal("the text <think> matched a token reference")
	}
	end, _ := tok.TokenID("</think>")
	for _, id := range append(append([]int32{think}, tok.Encode("abc", false, false)...), end) {
		if err := m.AcceptToken(id); err != nil {
			t.Fatalf("token %d: %v", id, err)
		}
	}
	if err := m.AcceptString("ok"); err != nil || !m.Done() {
		t.Fatalf("after ok: %v, done %v", err, m.Done())
	}
	for _, c := range []struct{ src, want string }{
		{`root ::= <think>`, "needs a vocabulary"},
		{`root ::= !<[5]>`, "not supported"},
		{`root ::= <[x]>`, "not a non-negative number"},
		{`root ::= <nope-not-a-token>`, "is not a token"},
		{`root ::= <[99999999]>`, "outside the vocabulary"},
	} {
		var err error
		if strings.Contains(c.src, "think>") {
			_, err = Parse(c.src)
		} else {
			_, err = ParseForVocab(c.src, v)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.src, err, c.want)
		}
	}
}
