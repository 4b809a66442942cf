package scheduler

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/inference-x/inference-x/grammar"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/tokenizer"
)

// storiesVocab is stories260K's grammar vocabulary.
func storiesVocab(t testing.TB, m *model.Model) *grammar.Vocab {
	t.Helper()
	tok, err := tokenizer.New(m.File)
	if err != nil {
		t.Fatal(err)
	}
	v, err := grammar.VocabFromTokenizer(tok)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A constrained request's tokens spell a sentence of its grammar, and it
// ends with FinishStop when nothing but the end can follow, greedy and
// sampled, beside an unconstrained request in the same batch.
func TestGrammarConstrains(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	v := storiesVocab(t, m)
	g, err := grammar.FromJSONSchema([]byte(`{"type":"object","properties":{"name":{"type":"string","maxLength":6},"n":{"enum":[1,2,3]}},"required":["name","n"]}`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(m, Config{Slots: 3, Ctx: 256, MaxBatch: 32, Queue: 4, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	start(t, s)
	samplers := []model.SamplerConfig{{}, {Temperature: 1, Seed: 3}}
	var streams []*Stream
	for _, sc := range samplers {
		st, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, 300}, MaxTokens: 200, Sampler: sc, Grammar: g, Vocab: v})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, st)
	}
	free, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, 300}, MaxTokens: 20})
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range streams {
		var text []byte
		var last Event
		for ev := range st.Events {
			if !ev.Done {
				text = append(text, v.Piece(ev.Token)...)
			}
			last = ev
		}
		if last.Reason != FinishStop {
			t.Errorf("sampler %d: finish %q (%v) after %q, want stop", i, last.Reason, last.Err, text)
		}
		var got struct {
			Name *string
			N    *int
		}
		if err := json.Unmarshal(text, &got); err != nil || got.Name == nil || got.N == nil || *got.N < 1 || *got.N > 3 {
			t.Errorf("sampler %d: %q does not follow the schema (%v)", i, text, err)
		}
	}
	n := 0
	for ev := range free.Events {
		if !ev.Done {
			n++
		} else if ev.Reason != FinishLength {
			t.Errorf("unconstrained request: finish %q", ev.Reason)
		}
	}
	if n != 20 {
		t.Errorf("unconstrained request: %d tokens, want 20", n)
	}
	if _, err := s.Submit(context.Background(), &Request{Prompt: []int32{1}, Grammar: g}); err == nil {
		t.Error("a grammar without a vocabulary was accepted")
	}
}

// A constrained decode step allocates nothing once its grammar's states
// are built (a grammar that cycles through one state).
func TestGrammarStepAllocs(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	v := storiesVocab(t, m)
	g, err := grammar.Parse(`root ::= [a-z ]*`)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(m, Config{Slots: 2, Ctx: 512, MaxBatch: 16, Queue: 4, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.runner.Close()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		j := &job{ctx: ctx, req: &Request{Prompt: []int32{1, int32(300 + i)}, Grammar: g, Vocab: v,
			Sampler: model.SamplerConfig{Temperature: 0.8, TopK: 40, Seed: uint64(i)}},
			events: make(chan Event, 512)}
		s.admit(j)
	}
	step := func() {
		if err := s.step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		step()
	}
	if n := testing.AllocsPerRun(50, step); n != 0 {
		t.Errorf("%.1f allocations per constrained step, want 0", n)
	}
	for i := range s.slots {
		if s.slots[i].job == nil {
			t.Fatalf("slot %d finished early", i)
		}
	}
}
