package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
)

// allTokenizers returns the golden vocabularies plus the pre-tokenizers
// checked against the peer (as rewritten copies), by name.
func allTokenizers(t testing.TB) map[string]*Tokenizer {
	dir := testenv.Shared(t, "testdata/tokenizer")
	m := map[string]*Tokenizer{}
	for _, v := range goldenVocabs {
		m[v] = openTokenizer(t, filepath.Join(dir, v+".gguf"))
	}
	for _, pc := range peerConfigs {
		m[pc.pre+"@"+pc.vocab] = openTokenizer(t, withPre(t, filepath.Join(dir, pc.vocab+".gguf"), pc.pre))
	}
	return m
}

// prose returns n bytes of English prose on a single line.
func prose(t testing.TB, n int) string {
	b, err := os.ReadFile(filepath.Join(testenv.Shared(t, "models"), "war-and-peace-40k.txt"))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(strings.Fields(string(b)), " ") + " "
	return strings.Repeat(line, n/len(line)+1)[:n]
}

func randomBytes(n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// encodeWork encodes text and returns the ids and the work counter:
// merge-heap operations plus pre-tokenizer steps.
func encodeWork(tok *Tokenizer, text string, addSpecial, parseSpecial bool) ([]int32, int) {
	e := new(encoder)
	ids := tok.encode(e, nil, text, addSpecial, parseSpecial)
	return ids, e.work
}

// TestLinearWork checks that the work of encoding grows linearly with the
// input for inputs that stress merging and pre-tokenizing: long runs of
// one character, whitespace, digits, invalid UTF-8, one long line.
func TestLinearWork(t *testing.T) {
	toks := allTokenizers(t)
	inputs := map[string]func(n int) string{
		"spaces":     func(n int) string { return strings.Repeat(" ", n) },
		"spaces+x":   func(n int) string { return strings.Repeat(" ", n-1) + "x" },
		"newlines":   func(n int) string { return strings.Repeat(" \n", n/2) },
		"tabs":       func(n int) string { return strings.Repeat("\t ", n/2) + "x" },
		"a":          func(n int) string { return strings.Repeat("a", n) },
		"ab":         func(n int) string { return strings.Repeat("ab", n/2) },
		"digits":     func(n int) string { return strings.Repeat("7", n) },
		"punct":      func(n int) string { return strings.Repeat("!?", n/2) },
		"cjk":        func(n int) string { return strings.Repeat("日本語", n/9) },
		"random":     func(n int) string { return randomBytes(n, 1) },
		"prose-line": func(n int) string { return prose(t, n) },
		"specials":   func(n int) string { return strings.Repeat("<|im_end|><s>", n/13) },
		"nbsp":       func(n int) string { return strings.Repeat("\u00a0", n/2) },
	}
	const n = 1 << 14
	for name, tok := range toks {
		for in, gen := range inputs {
			small, big := gen(n), gen(2*n)
			_, w1 := encodeWork(tok, small, true, true)
			_, w2 := encodeWork(tok, big, true, true)
			if w2 > 2*w1+w1/4+1000 {
				t.Errorf("%s, %s: work %d for %d bytes but %d for %d: not linear", name, in, w1, len(small), w2, len(big))
			}
			if w2 > 16*len(big) {
				t.Errorf("%s, %s: work %d for %d bytes", name, in, w2, len(big))
			}
		}
	}
}

// TestHardInputs runs the inputs the issue names through every tokenizer:
// empty text, invalid UTF-8, a 1 MB single line, 100k spaces.
func TestHardInputs(t *testing.T) {
	toks := allTokenizers(t)
	line := prose(t, 1<<20)
	spaces := strings.Repeat(" ", 100_000)
	for name, tok := range toks {
		if got := tok.Encode("", false, true); len(got) != 0 {
			t.Errorf("%s: empty text gives %v", name, got)
		}
		want := []int32{}
		if tok.AddBOS() {
			want = append(want, tok.BOS())
		}
		if got := tok.Encode("", true, true); !slices.Equal(got, want) {
			t.Errorf("%s: empty text with add_special gives %v, want %v", name, got, want)
		}
		for what, text := range map[string]string{"1 MB line": line, "100k spaces": spaces} {
			ids, work := encodeWork(tok, text, false, false)
			if len(ids) == 0 {
				t.Errorf("%s: %s gives no tokens", name, what)
			}
			if work > 16*len(text) {
				t.Errorf("%s: %s: work %d for %d bytes", name, what, work, len(text))
			}
			if got := tok.Decode(ids); !tok.cleanSpaces && got != text && tok.Model() == ModelBPE {
				t.Errorf("%s: %s does not decode back", name, what)
			}
		}
	}
}

// llamaText is text as llama.cpp's BPE path sees it: every malformed byte
// replaced by U+FFFD.
func llamaText(text string) string {
	var c codepoints
	c.reset(text, loadUnicodeTable())
	return string(c.norm)
}

// TestInvalidUTF8 checks that arbitrary bytes round-trip: exactly for
// SentencePiece (byte fallback), as llama.cpp's U+FFFD substitution for
// byte-level BPE.
func TestInvalidUTF8(t *testing.T) {
	toks := allTokenizers(t)
	for seed := uint64(0); seed < 20; seed++ {
		text := randomBytes(200+int(seed)*37, seed)
		for name, tok := range toks {
			ids := tok.Encode(text, false, false)
			got := tok.Decode(ids)
			switch {
			case tok.Model() == ModelSPM:
				// Spaces are left out: escaped to ▁ they can become part of a
				// malformed character and then come back as raw bytes, in
				// llama.cpp too.
				text := strings.ReplaceAll(text, " ", "")
				if got := tok.Decode(tok.Encode(text, false, false)); got != text {
					t.Errorf("%s: seed %d: random bytes do not round-trip", name, seed)
				}
			case !tok.cleanSpaces:
				if want := llamaText(text); got != want {
					t.Errorf("%s: seed %d: decode %q, want %q", name, seed, short(got), short(want))
				}
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tok.NumTokens() {
					t.Fatalf("%s: id %d out of range", name, id)
				}
			}
		}
	}
	// llama.cpp's decoder keeps overlong forms and surrogates, re-encoding
	// them as it decoded them; a lead byte above F4 is malformed.
	for in, want := range map[string]string{
		"\xc0\x80":         "\x00",
		"\xed\xa0\x80":     "\xed\xa0\x80",
		"\xf8\x88\x80\x80": "\ufffd\ufffd\ufffd\ufffd",
		"\xf5\x80\x80\x80": "\ufffd\ufffd\ufffd\ufffd",
		"a\xe2\x82":        "a\ufffd\ufffd",
	} {
		if got := llamaText(in); got != want {
			t.Errorf("llamaText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecoderStreaming checks the streaming decoder against Detokenize on
// random token sequences, including byte tokens that split characters
// and sequences that are not valid UTF-8.
func TestDecoderStreaming(t *testing.T) {
	toks := allTokenizers(t)
	r := rand.New(rand.NewPCG(7, 7))
	texts := []string{"Hello, world! It's a  test .", "don 't ' x ' y 're 've", "日本語 😀 café", prose(t, 2000)}
	for name, tok := range toks {
		for _, special := range []bool{false, true} {
			for _, text := range texts {
				ids := tok.Encode(text, true, true)
				if got, want := streamDecode(tok, ids, special), tok.Detokenize(ids, false, special); got != want {
					t.Errorf("%s: stream %q, want %q", name, short(got), short(want))
				}
			}
			for i := 0; i < 50; i++ {
				ids := make([]int32, 1+r.IntN(30))
				for j := range ids {
					ids[j] = int32(r.IntN(tok.NumTokens()))
				}
				want := tok.Detokenize(ids, false, special)
				got := streamDecode(tok, ids, special)
				if !isCompleteUTF8(got) {
					t.Fatalf("%s: stream of %v is not valid UTF-8: %q", name, ids, got)
				}
				if isCompleteUTF8(want) && got != want {
					t.Errorf("%s: stream of %v = %q, want %q", name, ids, got, want)
				}
			}
		}
	}
}

// byteTokenizer has one token per byte and clean_spaces on, to test the
// streaming clean-up passes on every split of short strings.
func byteTokenizer() *Tokenizer {
	t := &Tokenizer{model: ModelBPE, cleanSpaces: true}
	for b := 0; b < 256; b++ {
		t.pieces = append(t.pieces, string([]byte{byte(b)}))
		t.attrs = append(t.attrs, AttrNormal)
	}
	return t
}

func TestStreamingCleanSpaces(t *testing.T) {
	tok := byteTokenizer()
	alphabet := []byte(" 'stdmrev?.x")
	var rec func(prefix []byte)
	count := 0
	rec = func(prefix []byte) {
		ids := make([]int32, len(prefix))
		for i, b := range prefix {
			ids[i] = int32(b)
		}
		want := tok.Decode(ids)
		if got := streamDecode(tok, ids, false); got != want {
			t.Fatalf("%q: stream %q, batch %q", prefix, got, want)
		}
		count++
		if len(prefix) == 5 {
			return
		}
		for _, b := range alphabet {
			rec(append(prefix, b))
		}
	}
	rec(nil)
	t.Logf("%d strings", count)
}

func TestIncompleteTail(t *testing.T) {
	for in, want := range map[string]int{
		"": 0, "a": 0, "\xe2": 1, "\xe2\x82": 2, "\xe2\x82\xac": 0, "\xf0\x9f\x98": 3,
		"\xed\xa0": 0, "\xe0\x80": 0, "\xf4\x90": 0, "\xc0": 0, "\xff": 0, "\x80": 0, "a\xc3": 1,
	} {
		if got := incompleteTail([]byte(in)); got != want {
			t.Errorf("incompleteTail(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	if _, err := lookupPreTokenizer("nonesuch"); err == nil || !strings.Contains(err.Error(), `"nonesuch"`) ||
		!strings.Contains(err.Error(), "llama-bpe") {
		t.Errorf("error %v should name the pre-tokenizer and list the supported ones", err)
	}
	for _, name := range []string{"default", "gpt-2", "llama-bpe", "qwen2", "deepseek-v3", "deepseek-llm", "kimi-k2"} {
		if _, err := lookupPreTokenizer(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSPMSegments checks that merging SentencePiece text in pieces cut
// before each ▁ gives llama.cpp's whole-fragment result.
func TestSPMSegments(t *testing.T) {
	path := filepath.Join(testenv.Shared(t, "testdata/tokenizer"), "llama2-spm.gguf")
	tok := openTokenizer(t, path)
	if !tok.spmSplitAtSpace {
		t.Fatal("Llama 2's vocabulary should allow cutting at spaces")
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := New(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	whole.spmSplitAtSpace = false
	texts := []string{prose(t, 50_000), "  a  b   c\u2581\u2581d \u2581 e", randomBytes(5000, 3), strings.Repeat(" ", 3000)}
	for _, c := range readGolden(t, filepath.Join(testenv.Shared(t, "testdata/tokenizer"), "llama2-spm.jsonl")) {
		texts = append(texts, c.Text)
	}
	for _, text := range texts {
		if got, want := tok.Encode(text, true, true), whole.Encode(text, true, true); !slices.Equal(got, want) {
			t.Errorf("%q: cut %v, whole %v", short(text), got, want)
		}
	}
	if spmSplitsAtSpace([]string{"\u2581a", "\u2581\u2581", "a\u2581b"}) {
		t.Error("a token with ▁ after a letter must prevent cutting")
	}
	if !spmSplitsAtSpace([]string{"\u2581a", "\u2581\u2581", "\u2581\u2581x", "ab"}) {
		t.Error("leading ▁ runs allow cutting")
	}
}
