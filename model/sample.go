package model

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplerConfig selects the next token from logits. The zero value is
// greedy decoding with no penalties.
type SamplerConfig struct {
	Temperature float32 // <= 0: greedy (argmax)
	TopK        int     // 0: off
	TopP        float32 // 1 or 0: off
	MinP        float32 // 0: off
	// Penalties over the last PenaltyLastN tokens (llama.cpp semantics):
	// repetition divides positive logits (multiplies negative ones) by
	// Repeat; presence subtracts Presence once per seen token; frequency
	// subtracts Frequency per occurrence.
	Repeat       float32 // 1 or 0: off
	Presence     float32
	Frequency    float32
	PenaltyLastN int // 0 means 64
	Seed         uint64
	// MinKeep is the least number of candidates top-k, top-p and min-p
	// leave (llama.cpp's min_keep; 0 and 1 are the same).
	MinKeep int
	// LogitBias is added to the logits before the penalties (OpenAI's
	// logit_bias; a -Inf bias bans the token). Ids outside the
	// vocabulary are skipped.
	LogitBias []TokenBias
}

// TokenBias is one logit_bias entry.
type TokenBias struct {
	ID   int32
	Bias float32
}

// Validate checks ranges.
func (c *SamplerConfig) Validate() error {
	switch {
	case c.Temperature < 0 || math.IsNaN(float64(c.Temperature)):
		return fmt.Errorf("temperature %v must be >= 0", c.Temperature)
	case c.TopK < 0:
		return fmt.Errorf("top-k %d must be >= 0", c.TopK)
	case c.TopP < 0 || c.TopP > 1:
		return fmt.Errorf("top-p %v must be in [0, 1]", c.TopP)
	case c.MinP < 0 || c.MinP > 1:
		return fmt.Errorf("min-p %v must be in [0, 1]", c.MinP)
	case c.Repeat < 0:
		return fmt.Errorf("repeat penalty %v must be >= 0", c.Repeat)
	case c.MinKeep < 0:
		return fmt.Errorf("min-keep %d must be >= 0", c.MinKeep)
	case c.PenaltyLastN < 0:
		return fmt.Errorf("penalty window %d must be >= 0", c.PenaltyLastN)
	}
	return nil
}

type candidate struct {
	id    int32
	logit float32
	p     float32
}

// Sampler draws tokens with a SamplerConfig. Its buffers are sized once
// for the vocabulary, so Sample allocates nothing. Not safe for concurrent
// use.
type Sampler struct {
	cfg    SamplerConfig
	rng    *rand.Rand
	cands  []candidate
	recent []int32
	counts map[int32]int
}

// NewSampler returns a sampler for a vocabulary of n tokens.
func NewSampler(cfg SamplerConfig, n int) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PenaltyLastN == 0 {
		cfg.PenaltyLastN = 64
	}
	return &Sampler{
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		cands:  make([]candidate, n),
		recent: make([]int32, 0, cfg.PenaltyLastN),
		counts: make(map[int32]int, cfg.PenaltyLastN),
	}, nil
}

// Accept records a token of the context (prompt or generated) for the
// penalties.
func (s *Sampler) Accept(tok int32) {
	if s.penaltiesOff() {
		return
	}
	if len(s.recent) == s.cfg.PenaltyLastN {
		old := s.recent[0]
		copy(s.recent, s.recent[1:])
		s.recent = s.recent[:len(s.recent)-1]
		if s.counts[old]--; s.counts[old] == 0 {
			delete(s.counts, old)
		}
	}
	s.recent = append(s.recent, tok)
	s.counts[tok]++
}

func (s *Sampler) penaltiesOff() bool {
	c := &s.cfg
	return (c.Repeat == 0 || c.Repeat == 1) && c.Presence == 0 && c.Frequency == 0
}

// load fills the candidates with logits plus the logit bias and the
// penalties: the distribution Sample truncates and draws from.
func (s *Sampler) load(logits []float32) []candidate {
	c := &s.cfg
	cands := s.cands[:len(logits)]
	for i, l := range logits {
		cands[i] = candidate{id: int32(i), logit: l}
	}
	for _, b := range c.LogitBias {
		if b.ID >= 0 && int(b.ID) < len(cands) {
			cands[b.ID].logit += b.Bias
		}
	}
	if !s.penaltiesOff() {
		for tok, n := range s.counts {
			if int(tok) >= len(cands) {
				continue
			}
			l := &cands[tok].logit
			if c.Repeat != 0 && c.Repeat != 1 {
				if *l <= 0 {
					*l *= c.Repeat
				} else {
					*l /= c.Repeat
				}
			}
			*l -= float32(n)*c.Frequency + c.Presence
		}
	}
	return cands
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	ID      int32
	Logprob float32
}

// Logprobs returns the log-probability of tok and the top len(top)
// tokens (best first, ties by id) in top, for the logits Sample was just
// given, before Accept: the log-softmax at temperature 1 of the logits
// after the logit bias and the penalties, over the whole vocabulary
// (OpenAI's definition: top-k, top-p, min-p and the temperature do not
// change it). It costs two passes over the vocabulary and allocates
// nothing.
func (s *Sampler) Logprobs(logits []float32, tok int32, top []TokenLogprob) float32 {
	cands := s.load(logits)
	mx := float32(math.Inf(-1))
	for i := range cands {
		mx = max(mx, cands[i].logit)
	}
	var sum float64
	for i := range cands {
		sum += math.Exp(float64(cands[i].logit - mx))
	}
	lse := mx + float32(math.Log(sum))
	chosen := float32(math.Inf(-1))
	if tok >= 0 && int(tok) < len(cands) {
		chosen = cands[tok].logit - lse
	}
	if n := min(len(top), len(cands)); n > 0 {
		best := selectTopK(cands, n)
		slices.SortFunc(best, better)
		for i := range n {
			top[i] = TokenLogprob{ID: best[i].id, Logprob: best[i].logit - lse}
		}
	}
	return chosen
}

// Sample returns the next token for logits (len = vocabulary size). It
// does not modify logits.
func (s *Sampler) Sample(logits []float32) int32 {
	c := &s.cfg
	cands := s.load(logits)
	if c.Temperature <= 0 {
		best := 0
		for i := range cands {
			if cands[i].logit > cands[best].logit {
				best = i
			}
		}
		return cands[best].id
	}
	if k := max(c.TopK, c.MinKeep); c.TopK > 0 && k < len(cands) {
		cands = selectTopK(cands, k)
	}
	slices.SortFunc(cands, better)
	softmaxCands(cands, 1)
	if c.TopP > 0 && c.TopP < 1 {
		var cum float32
		for i := range cands {
			cum += cands[i].p
			if cum >= c.TopP && i+1 >= c.MinKeep {
				cands = cands[:i+1]
				break
			}
		}
	}
	if c.MinP > 0 {
		limit := cands[0].p * c.MinP
		for i := 1; i < len(cands); i++ {
			if cands[i].p < limit && i >= c.MinKeep {
				cands = cands[:i]
				break
			}
		}
	}
	softmaxCands(cands, c.Temperature)
	u := s.rng.Float32()
	var cum float32
	for i := range cands {
		cum += cands[i].p
		if u < cum {
			return cands[i].id
		}
	}
	// Rounding left u at or above the sum: the last candidate that can
	// be drawn (a -Inf logit, as a grammar mask leaves, has p = 0).
	for i := len(cands) - 1; i > 0; i-- {
		if cands[i].p > 0 {
			return cands[i].id
		}
	}
	return cands[0].id
}

// softmaxCands sets p = softmax(logit / temp) over sorted candidates.
func softmaxCands(cands []candidate, temp float32) {
	mx := cands[0].logit
	var sum float64
	for i := range cands {
		e := float32(math.Exp(float64((cands[i].logit - mx) / temp)))
		cands[i].p = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for i := range cands {
		cands[i].p *= inv
	}
}

// better orders candidates by descending logit, then ascending id.
func better(a, b candidate) int {
	if r := cmp.Compare(b.logit, a.logit); r != 0 {
		return r
	}
	return cmp.Compare(a.id, b.id)
}

// selectTopK moves the k best candidates to the front (unordered) in
// O(n log k) with a min-heap of size k, and returns them.
func selectTopK(c []candidate, k int) []candidate {
	h := c[:k]
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
	for i := k; i < len(c); i++ {
		if better(c[i], h[0]) < 0 {
			h[0], c[i] = c[i], h[0]
			siftDown(h, 0)
		}
	}
	return h
}

// siftDown restores the heap property (worst candidate at the root).
func siftDown(h []candidate, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && better(h[r], h[l]) > 0 {
			w = r
		}
		if better(h[w], h[i]) <= 0 {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}
