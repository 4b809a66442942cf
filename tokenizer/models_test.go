package tokenizer

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestModelVocabs checks the test models' vocabularies against
// ../shared/testdata/models/<model>.tokenize.json (llama.cpp's tokens,
// pieces and ids with and without BOS and special parsing). The
// deepseek2-384 file is the only reference for the kimi-k2 pre-tokenizer.
func TestModelVocabs(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	for _, m := range []struct{ model, vocab string }{
		{"llama-dense", "spm"},
		{"qwen3moe-small", "qwen2"},
		{"deepseek2-384", "kimi-k2"},
		{"deepseek2-v3", "deepseek-v3"},
	} {
		t.Run(m.vocab, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, m.model+".tokenize.json"))
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				Model string `json:"model"`
				Vocab string `json:"vocab"`
				Tests []struct {
					Text               string   `json:"text"`
					Tokens             []int32  `json:"tokens"`
					PiecesHex          []string `json:"pieces_hex"`
					TokensParseSpecial []int32  `json:"tokens_parse_special"`
					TokensNoBOS        []int32  `json:"tokens_no_bos"`
				} `json:"tests"`
			}
			if err := json.Unmarshal(b, &ref); err != nil {
				t.Fatal(err)
			}
			if ref.Vocab != m.vocab {
				t.Fatalf("%s is vocab %q, want %q", m.model, ref.Vocab, m.vocab)
			}
			tok := openTokenizer(t, filepath.Join(dir, ref.Model))
			for _, c := range ref.Tests {
				check := func(what string, got, want []int32) {
					t.Helper()
					if !slices.Equal(got, want) {
						t.Errorf("%q %s:\n  got  %v\n  want %v", c.Text, what, got, want)
					}
				}
				check("with BOS", tok.Encode(c.Text, true, false), c.Tokens)
				check("parse special", tok.Encode(c.Text, true, true), c.TokensParseSpecial)
				check("no BOS", tok.Encode(c.Text, false, false), c.TokensNoBOS)
				for i, id := range c.Tokens {
					if got := hex.EncodeToString([]byte(tok.TokenToPiece(id, true))); got != c.PiecesHex[i] {
						t.Errorf("piece of %d = %s, want %s", id, got, c.PiecesHex[i])
					}
				}
			}
		})
	}
}

// TestStories260K checks the whole 40 KB War and Peace excerpt against the
// 24121 tokens llama.cpp produced with stories260K's 512-token SPM vocab.
func TestStories260K(t *testing.T) {
	dir := testenv.Shared(t, "models/stories260K")
	b, err := os.ReadFile(filepath.Join(dir, "perplexity", "war-and-peace-40k.tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Text    string  `json:"text"`
		AddBOS  bool    `json:"add_bos"`
		NTokens int     `json:"n_tokens"`
		Tokens  []int32 `json:"tokens"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "..", ref.Text))
	if err != nil {
		t.Fatal(err)
	}
	tok := openTokenizer(t, filepath.Join(dir, "stories260K.gguf"))
	got := tok.Encode(string(text), ref.AddBOS, false)
	if len(got) != ref.NTokens || len(ref.Tokens) != ref.NTokens {
		t.Fatalf("%d tokens, want %d", len(got), ref.NTokens)
	}
	for i := range got {
		if got[i] != ref.Tokens[i] {
			t.Fatalf("token %d = %d, want %d (context %v)", i, got[i], ref.Tokens[i], ref.Tokens[max(0, i-3):min(len(got), i+4)])
		}
	}
	// Without the BOS, detokenizing drops the prefix space of the first
	// piece and gives the text back. After a BOS llama.cpp keeps that
	// space, also when remove_special drops the BOS.
	if d := tok.Decode(got[1:]); d != string(text) {
		t.Errorf("decode differs from the text (%d vs %d bytes)", len(d), len(text))
	}
	for _, removeSpecial := range []bool{false, true} {
		if d := tok.Detokenize(got, removeSpecial, false); d != " "+string(text) {
			t.Errorf("detokenize(remove_special=%v) is not the text after one space", removeSpecial)
		}
	}
}
