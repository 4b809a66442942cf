package tokenizer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
)

// goldenCase is one line of ../shared/testdata/tokenizer/<vocab>.jsonl:
// llama.cpp's llama_tokenize and llama_detokenize on one text.
type goldenCase struct {
	Case         string  `json:"case"`
	Text         string  `json:"text"`
	AddSpecial   bool    `json:"add_special"`
	ParseSpecial bool    `json:"parse_special"`
	IDs          []int32 `json:"ids"`
	Detok        *string `json:"detok"`
	DetokSpecial *string `json:"detok_special"`
}

// goldenVocabs are the vocabularies of ../shared/testdata/tokenizer.
var goldenVocabs = []string{"llama2-spm", "llama3-bpe", "qwen3-bpe", "deepseek-v3-bpe", "gpt2-bpe"}

var tokenizerCache sync.Map // path -> *Tokenizer

// openTokenizer loads (once per test binary) the tokenizer of a GGUF file.
func openTokenizer(t testing.TB, path string) *Tokenizer {
	t.Helper()
	if tok, ok := tokenizerCache.Load(path); ok {
		return tok.(*Tokenizer)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := New(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tokenizerCache.Store(path, tok)
	return tok
}

func readGolden(t testing.TB, path string) []goldenCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []goldenCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c goldenCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// streamDecode runs ids through a Decoder the way a server streams them.
func streamDecode(tok *Tokenizer, ids []int32, special bool) string {
	d := tok.NewDecoder(special)
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(d.Add(id))
	}
	sb.WriteString(d.Flush())
	return sb.String()
}

func TestGolden(t *testing.T) {
	dir := testenv.Shared(t, "testdata/tokenizer")
	for _, vocab := range goldenVocabs {
		t.Run(vocab, func(t *testing.T) {
			t.Parallel()
			tok := openTokenizer(t, filepath.Join(dir, vocab+".gguf"))
			cases := readGolden(t, filepath.Join(dir, vocab+".jsonl"))
			var fails []string
			fail := func(format string, args ...any) {
				fails = append(fails, fmt.Sprintf(format, args...))
			}
			pass := 0
			for _, c := range cases {
				name := fmt.Sprintf("%s add=%v parse=%v", c.Case, c.AddSpecial, c.ParseSpecial)
				ok := true
				if got := tok.Encode(c.Text, c.AddSpecial, c.ParseSpecial); !slices.Equal(got, c.IDs) {
					fail("%s: text %q\n  ids  %v\n  want %v", name, short(c.Text), got, c.IDs)
					ok = false
				}
				for _, d := range []struct {
					special bool
					want    *string
				}{{false, c.Detok}, {true, c.DetokSpecial}} {
					if d.want == nil {
						continue
					}
					if got := tok.Detokenize(c.IDs, false, d.special); got != *d.want {
						fail("%s: detokenize(special=%v)\n  got  %q\n  want %q", name, d.special, short(got), short(*d.want))
						ok = false
					}
					if got := streamDecode(tok, c.IDs, d.special); got != *d.want {
						fail("%s: streaming decode(special=%v)\n  got  %q\n  want %q", name, d.special, short(got), short(*d.want))
						ok = false
					}
				}
				if ok {
					pass++
				}
			}
			t.Logf("%s: %d/%d cases pass", vocab, pass, len(cases))
			for i, f := range fails {
				if i == 20 {
					t.Errorf("... %d more failures", len(fails)-i)
					break
				}
				t.Error(f)
			}
		})
	}
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// TestVocabInfo checks the special ids and flags against what llama.cpp
// reports for each golden vocabulary (vocabs.json).
func TestVocabInfo(t *testing.T) {
	dir := testenv.Shared(t, "testdata/tokenizer")
	b, err := os.ReadFile(filepath.Join(dir, "vocabs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]struct {
		GGUF     string `json:"gguf"`
		NTokens  int    `json:"n_tokens"`
		LlamaCPP struct {
			BOS, EOS, EOT, PAD, Newline int32
			AddBOS                      bool `json:"add_bos"`
			AddEOS                      bool `json:"add_eos"`
		} `json:"llama_cpp"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	for _, vocab := range goldenVocabs {
		want := info[vocab]
		tok := openTokenizer(t, filepath.Join(dir, want.GGUF))
		w := want.LlamaCPP
		got := []int32{tok.BOS(), tok.EOS(), tok.EOT(), tok.PAD(), tok.NL()}
		if exp := []int32{w.BOS, w.EOS, w.EOT, w.PAD, w.Newline}; !slices.Equal(got, exp) {
			t.Errorf("%s: bos, eos, eot, pad, nl = %v, want %v", vocab, got, exp)
		}
		if tok.AddBOS() != w.AddBOS || tok.AddEOS() != w.AddEOS {
			t.Errorf("%s: add_bos, add_eos = %v, %v, want %v, %v", vocab, tok.AddBOS(), tok.AddEOS(), w.AddBOS, w.AddEOS)
		}
		if tok.NumTokens() != want.NTokens {
			t.Errorf("%s: %d tokens, want %d", vocab, tok.NumTokens(), want.NTokens)
		}
		for _, id := range []int32{w.EOS, w.EOT} {
			if id != Null && !tok.IsEOG(id) {
				t.Errorf("%s: %d is not end-of-generation", vocab, id)
			}
		}
	}
}
