package tokenizer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// benchTextSize is the size of the benchmark text: 1 MiB.
const benchTextSize = 1 << 20

var benchOnce sync.Once
var benchText string

// englishProse returns 1 MiB of English prose, mostly distinct text: Go's
// copy of Newton's Opticks (GOROOT/src/testdata, 567 KB), the War and
// Peace excerpt and the War and Peace chunks of the goldens, repeated
// from the start only to fill up the last bytes.
func englishProse(tb testing.TB) string {
	benchOnce.Do(func() {
		var sb strings.Builder
		if root, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
			if b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(root)), "src", "testdata", "Isaac.Newton-Opticks.txt")); err == nil {
				sb.Write(b)
			}
		}
		if b, err := os.ReadFile(filepath.Join(testenv.Shared(tb, "models"), "war-and-peace-40k.txt")); err == nil {
			sb.WriteString("\n\n")
			sb.Write(b)
		}
		seen := map[string]bool{}
		for _, c := range readGolden(tb, filepath.Join(testenv.Shared(tb, "testdata/tokenizer"), "llama2-spm.jsonl")) {
			if strings.HasPrefix(c.Case, "public/war-and-peace/") && !seen[c.Case] {
				seen[c.Case] = true
				sb.WriteString("\n\n")
				sb.WriteString(c.Text)
			}
		}
		s := sb.String()
		benchText = strings.Repeat(s, benchTextSize/len(s)+1)[:benchTextSize]
	})
	return benchText
}

// BenchmarkEncode encodes 1 MiB of English prose with each golden
// vocabulary, each time with fresh scratch state (no word cached, no
// buffer kept): the cost of one long call. MB/s from SetBytes.
func BenchmarkEncode(b *testing.B) {
	benchEncode(b, func(tok *Tokenizer, dst []int32, text string) []int32 {
		return tok.encode(new(encoder), dst, text, false, false)
	})
}

// BenchmarkEncodeWarm is BenchmarkEncode through the public API, whose
// pooled scratch state (buffers, cache of merged words) stays warm from
// one call to the next, as in a server encoding many prompts.
func BenchmarkEncodeWarm(b *testing.B) {
	benchEncode(b, func(tok *Tokenizer, dst []int32, text string) []int32 {
		return tok.AppendEncode(dst, text, false, false)
	})
}

func benchEncode(b *testing.B, encode func(tok *Tokenizer, dst []int32, text string) []int32) {
	text := englishProse(b)
	dir := testenv.Shared(b, "testdata/tokenizer")
	for _, vocab := range goldenVocabs {
		b.Run(vocab, func(b *testing.B) {
			tok := openTokenizer(b, filepath.Join(dir, vocab+".gguf"))
			b.SetBytes(int64(len(text)))
			var ids []int32
			for b.Loop() {
				ids = encode(tok, ids[:0], text)
			}
			b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkDecoder streams the tokens of the benchmark text through a
// Decoder, one token per call.
func BenchmarkDecoder(b *testing.B) {
	text := englishProse(b)[:64<<10]
	dir := testenv.Shared(b, "testdata/tokenizer")
	for _, vocab := range goldenVocabs {
		b.Run(vocab, func(b *testing.B) {
			tok := openTokenizer(b, filepath.Join(dir, vocab+".gguf"))
			ids := tok.Encode(text, false, false)
			d := tok.NewDecoder(false)
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				for _, id := range ids {
					buf = d.Append(buf[:0], id)
				}
				d.Flush()
			}
			b.ReportMetric(float64(len(ids))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
