package model

import (
	"math"
	"testing"
)

func TestSamplerLogitBias(t *testing.T) {
	logits := []float32{1, 5, 3, -2}
	s, _ := NewSampler(SamplerConfig{LogitBias: []TokenBias{{ID: 1, Bias: float32(math.Inf(-1))}, {ID: 3, Bias: 4.5}, {ID: 99, Bias: 9}}}, len(logits))
	if got := s.Sample(logits); got != 2 {
		t.Errorf("greedy with token 1 banned picked %d, want 2", got)
	}
	if logits[1] != 5 {
		t.Errorf("Sample modified logits: %v", logits)
	}
	s, _ = NewSampler(SamplerConfig{LogitBias: []TokenBias{{ID: 3, Bias: 8}}}, len(logits))
	if got := s.Sample(logits); got != 3 {
		t.Errorf("greedy with token 3 biased +8 picked %d, want 3", got)
	}
	// Banned at a temperature: never drawn.
	s, _ = NewSampler(SamplerConfig{Temperature: 2, Seed: 7, LogitBias: []TokenBias{{ID: 1, Bias: float32(math.Inf(-1))}}}, len(logits))
	for range 500 {
		if s.Sample(logits) == 1 {
			t.Fatal("a banned token was drawn")
		}
	}
}

func TestSamplerMinKeep(t *testing.T) {
	logits := []float32{10, 0, 0, 0} // token 0 holds nearly all the mass
	seen := func(cfg SamplerConfig) map[int32]bool {
		s, _ := NewSampler(cfg, len(logits))
		got := map[int32]bool{}
		for range 2000 {
			got[s.Sample(logits)] = true
		}
		return got
	}
	// Temperature 100 flattens the kept candidates, so every kept one is drawn.
	if got := seen(SamplerConfig{Temperature: 100, TopP: 0.5, Seed: 1}); len(got) != 1 {
		t.Errorf("top-p 0.5 drew %v, want token 0 only", got)
	}
	if got := seen(SamplerConfig{Temperature: 100, TopP: 0.5, MinKeep: 3, Seed: 1}); len(got) != 3 {
		t.Errorf("top-p 0.5 min-keep 3 drew %v, want 3 tokens", got)
	}
	if got := seen(SamplerConfig{Temperature: 100, MinP: 0.5, MinKeep: 2, Seed: 1}); len(got) != 2 {
		t.Errorf("min-p 0.5 min-keep 2 drew %v, want 2 tokens", got)
	}
	if got := seen(SamplerConfig{Temperature: 100, TopK: 1, MinKeep: 2, Seed: 1}); len(got) != 2 {
		t.Errorf("top-k 1 min-keep 2 drew %v, want 2 tokens", got)
	}
	if (&SamplerConfig{MinKeep: -1}).Validate() == nil {
		t.Error("min-keep -1 validated")
	}
}

func TestSamplerLogprobs(t *testing.T) {
	logits := []float32{1, 5, 3, -2, 5}
	s, _ := NewSampler(SamplerConfig{Repeat: 2, LogitBias: []TokenBias{{ID: 3, Bias: 1}}}, len(logits))
	s.Accept(4) // token 4's logit is halved by the repeat penalty
	tok := s.Sample(logits)
	top := make([]TokenLogprob, 3)
	lp := s.Logprobs(logits, tok, top)
	want := []float32{1, 5, 3, -1, 2.5} // after bias and penalty
	var sum float64
	for _, l := range want {
		sum += math.Exp(float64(l))
	}
	lse := float32(math.Log(sum))
	if tok != 1 || math.Abs(float64(lp-(5-lse))) > 1e-5 {
		t.Errorf("token %d logprob %v, want 1 and %v", tok, lp, 5-lse)
	}
	wantTop := []TokenLogprob{{1, 5 - lse}, {2, 3 - lse}, {4, 2.5 - lse}}
	for i := range wantTop {
		if top[i].ID != wantTop[i].ID || math.Abs(float64(top[i].Logprob-wantTop[i].Logprob)) > 1e-5 {
			t.Errorf("top %v, want %v", top, wantTop)
			break
		}
	}
}
