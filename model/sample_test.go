package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSelectTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 10, 1000} {
		for _, k := range []int{1, 2, 7, n} {
			if k > n {
				continue
			}
			c := make([]candidate, n)
			for i := range c {
				c[i] = candidate{id: int32(i), logit: float32(rng.IntN(50))} // many ties
			}
			want := slices.Clone(c)
			slices.SortFunc(want, better)
			got := slices.Clone(selectTopK(c, k))
			slices.SortFunc(got, better)
			if !slices.Equal(got, want[:k]) {
				t.Fatalf("n=%d k=%d: top-k %v, want %v", n, k, got, want[:k])
			}
		}
	}
}

func TestSamplerGreedyAndSeed(t *testing.T) {
	logits := []float32{1, 5, 5, -2, 3}
	s, _ := NewSampler(SamplerConfig{}, len(logits))
	if got := s.Sample(logits); got != 1 {
		t.Errorf("greedy picked %d, want 1 (lowest id among ties)", got)
	}
	draw := func(seed uint64) []int32 {
		s, _ := NewSampler(SamplerConfig{Temperature: 1, TopK: 3, Seed: seed}, len(logits))
		var out []int32
		for i := 0; i < 20; i++ {
			out = append(out, s.Sample(logits))
		}
		return out
	}
	a, b := draw(7), draw(7)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different draws: %v vs %v", a, b)
	}
	for _, id := range a {
		if id == 3 || id == 0 {
			t.Errorf("top-k 3 drew token %d outside the top 3", id)
		}
	}
	s, _ = NewSampler(SamplerConfig{Temperature: 1, MinP: 0.5, Seed: 1}, len(logits))
	for i := 0; i < 50; i++ {
		if id := s.Sample(logits); id != 1 && id != 2 {
			t.Fatalf("min-p 0.5 drew token %d (p far below half the best)", id)
		}
	}
	s, _ = NewSampler(SamplerConfig{Repeat: 100, PenaltyLastN: 4}, len(logits))
	s.Accept(1)
	if got := s.Sample(logits); got != 2 {
		t.Errorf("with token 1 penalised, greedy picked %d, want 2", got)
	}
	if err := (&SamplerConfig{TopP: 2}).Validate(); err == nil {
		t.Error("top-p 2 accepted")
	}
}

// maxSource makes every draw u the largest Float32 below 1.
type maxSource struct{}

func (maxSource) Uint64() uint64 { return ^uint64(0) }

// A masked (-Inf) logit has probability 0: even when rounding leaves the
// draw above the cumulative sum, Sample never returns it.
func TestSampleNeverDrawsMasked(t *testing.T) {
	inf := float32(math.Inf(-1))
	for n := 2; n <= 40; n++ {
		logits := make([]float32, n+3)
		for i := range n {
			logits[i] = float32(i%3) * 0.1
		}
		logits[n], logits[n+1], logits[n+2] = inf, inf, inf
		s, _ := NewSampler(SamplerConfig{Temperature: 0.7}, len(logits))
		s.rng = rand.New(maxSource{})
		if got := s.Sample(logits); int(got) >= n {
			t.Fatalf("%d allowed tokens: drew masked token %d", n, got)
		}
	}
}
