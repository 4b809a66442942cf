package scheduler

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/grammar"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/synth"
	"github.com/inference-x/inference-x/tokenizer"
)

// benchSchema is a typical structured-output schema (OpenAI's strict
// schemas have no string lengths); benchBounded bounds every string
// (maxLength), the worst case for the mask cache: each character
// position of a bounded string is a new grammar state, so a Mask walk
// per token instead of a cache hit.
const (
	benchSchema = `{"type":"object","properties":{
 "name":{"type":"string"},
 "age":{"type":"integer","minimum":0,"maximum":150},
 "email":{"type":"string"},
 "tags":{"type":"array","items":{"type":"string"},"maxItems":8},
 "address":{"type":"object","properties":{"street":{"type":"string"},"city":{"enum":["London","Paris","Tokyo"]},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","city"]},
 "active":{"type":"boolean"}},
 "required":["name","age","tags","address"]}`
	benchBounded = `{"type":"object","properties":{
 "name":{"type":"string","maxLength":40},
 "age":{"type":"integer","minimum":0,"maximum":150},
 "tags":{"type":"array","items":{"type":"string","maxLength":20},"maxItems":8}},
 "required":["name","age","tags"]}`
)

// BenchmarkConstrainedDecode measures the cost of masking: one sequence
// decoding up to 64 tokens on a 151936-token model (a synth qwen3 with
// Qwen3's vocabulary size, 2 layers, 256 wide, Q8_0), unconstrained and
// under benchSchema with the real Qwen3 tokenizer's grammar vocabulary
// (so the mask walks a real 151936-token trie). tok/s counts generated
// tokens over wall time, cpu-ms/token the process's CPU time (both
// threads) per generated token, steadier on a shared machine; ns/op is
// one request.
//
//	go test ./server/scheduler -run '^$' -bench ConstrainedDecode -benchtime 20x
func BenchmarkConstrainedDecode(b *testing.B) {
	c, err := synth.DefaultConfig("qwen3")
	if err != nil {
		b.Fatal(err)
	}
	c.Vocab = 151936
	path := filepath.Join(b.TempDir(), "qwen3-vocab.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 3}, path); err != nil {
		b.Fatal(err)
	}
	m := experttest.OpenModel(b, path)
	f, err := gguf.Open(testenv.Shared(b, "testdata/tokenizer/qwen3-bpe.gguf"))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := tokenizer.New(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	vocab, err := grammar.VocabFromTokenizer(tok)
	if err != nil {
		b.Fatal(err)
	}
	if vocab.Size() > m.Config.Vocab {
		b.Fatalf("tokenizer has %d tokens, the model %d", vocab.Size(), m.Config.Vocab)
	}
	g, err := grammar.FromJSONSchema([]byte(benchSchema))
	if err != nil {
		b.Fatal(err)
	}
	bounded, err := grammar.FromJSONSchema([]byte(benchBounded))
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(m, Config{Slots: 1, Ctx: 512, KV: model.KVF16, MaxBatch: 64, Queue: 1, Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	start(b, s)
	prompt := tok.Encode("Describe a person as JSON:", false, false)
	for _, bc := range []struct {
		name string
		g    *grammar.Grammar
	}{{"free", nil}, {"json_schema", g}, {"json_schema_bounded", bounded}} {
		b.Run(bc.name, func(b *testing.B) {
			generated := 0
			run := func(seed uint64) {
				req := &Request{Prompt: prompt, MaxTokens: 64, IsEOG: tok.IsEOG,
					Sampler: model.SamplerConfig{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: seed}}
				if bc.g != nil {
					req.Grammar, req.Vocab = bc.g, vocab
				}
				st, err := s.Submit(context.Background(), req)
				if err != nil {
					b.Fatal(err)
				}
				for ev := range st.Events {
					if ev.Done {
						if ev.Reason != FinishStop && ev.Reason != FinishLength {
							b.Fatalf("finish %s: %v", ev.Reason, ev.Err)
						}
						continue
					}
					generated++
				}
			}
			run(0) // warm-up
			generated = 0
			b.ResetTimer()
			t0, cpu0 := time.Now(), processCPU()
			for i := range b.N {
				run(uint64(i + 1))
			}
			el, cpu := time.Since(t0), processCPU()-cpu0
			b.ReportMetric(float64(generated)/el.Seconds(), "tok/s")
			b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(generated), "cpu-ms/token")
			b.ReportMetric(float64(generated)/float64(b.N), "tokens/op")
		})
	}
}
