package tokenizer

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// FuzzEncode feeds arbitrary bytes to a byte-level BPE and a SentencePiece
// vocabulary: no panic, ids in range, decoding gives the text back (as
// llama.cpp sees it), and streaming decoding equals batch decoding.
func FuzzEncode(f *testing.F) {
	dir := testenv.Shared(f, "testdata/tokenizer")
	for _, c := range readGolden(f, filepath.Join(dir, "qwen3-bpe.jsonl")) {
		if strings.HasPrefix(c.Case, "public/tricky/") && !c.AddSpecial {
			f.Add(c.Text, c.ParseSpecial)
		}
	}
	f.Add("\xed\xa0\x80\xc0\x80\xff a'S  \n\n<|im_end|>", true)
	bpe := openTokenizer(f, filepath.Join(dir, "qwen3-bpe.gguf"))
	spm := openTokenizer(f, filepath.Join(dir, "llama2-spm.gguf"))
	f.Fuzz(func(t *testing.T, text string, parseSpecial bool) {
		for _, tok := range []*Tokenizer{bpe, spm} {
			ids := tok.Encode(text, true, parseSpecial)
			for _, id := range ids {
				if id < 0 || int(id) >= tok.NumTokens() {
					t.Fatalf("id %d out of range", id)
				}
			}
			for _, special := range []bool{false, true} {
				want := tok.Detokenize(ids, false, special)
				if got := streamDecode(tok, ids, special); isCompleteUTF8(want) && got != want {
					t.Fatalf("stream %q, batch %q", got, want)
				}
			}
		}
		if !parseSpecial {
			if got, want := bpe.Decode(bpe.Encode(text, false, false)), llamaText(text); got != want {
				t.Fatalf("BPE round trip %q, want %q", got, want)
			}
			if s := strings.ReplaceAll(text, " ", ""); !strings.Contains(s, "\u2581") {
				if got := spm.Decode(spm.Encode(s, false, false)); got != s {
					t.Fatalf("SPM round trip %q, want %q", got, s)
				}
			}
		}
	})
}

// TestConcurrentEncode encodes from several goroutines at once (run with
// -race): Tokenizer is shared, scratch state is per call.
func TestConcurrentEncode(t *testing.T) {
	dir := testenv.Shared(t, "testdata/tokenizer")
	text := prose(t, 20_000)
	for _, vocab := range goldenVocabs {
		tok := openTokenizer(t, filepath.Join(dir, vocab+".gguf"))
		want := tok.Encode(text, true, true)
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 3; i++ {
					if got := tok.Encode(text, true, true); !slices.Equal(got, want) {
						t.Errorf("%s: concurrent encode differs", vocab)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
}
