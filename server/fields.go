package server

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"github.com/inference-x/inference-x/model"
)

// llamaFields are llama-server's spellings and OpenAI's sampling extras
// beside samplingFields. Unknown fields are ignored, as OpenAI does; a
// known field with a bad value is a 400 naming it.
type llamaFields struct {
	// NPredict is llama-server's max_tokens (both given and different: 400).
	NPredict *int `json:"n_predict"`
	// IgnoreEOS bans end-of-generation tokens: the generation ends at the
	// token budget or the context.
	IgnoreEOS *bool `json:"ignore_eos"`
	// RepetitionPenalty is vLLM's / HF's spelling of repeat_penalty.
	RepetitionPenalty *float64 `json:"repetition_penalty"`
	// MinKeep is the least number of candidates top-p and min-p keep.
	MinKeep *int `json:"min_keep"`
	// CachePrompt is accepted and ignored (every request evaluates its
	// whole prompt today).
	CachePrompt *bool `json:"cache_prompt"`
	// LogitBias maps token ids (as strings) to a bias in [-100, 100]
	// added to the logit; -100 bans the token.
	LogitBias json.RawMessage `json:"logit_bias"`
	// Logprobs is chat's boolean or completions' integer N; TopLogprobs
	// and llama-server's NProbs set the alternatives (logprobs.go).
	Logprobs    json.RawMessage `json:"logprobs"`
	TopLogprobs *int            `json:"top_logprobs"`
	NProbs      *int            `json:"n_probs"`
}

// extraParams validates llamaFields into p; f's own fields are already in p.
func (s *Server) extraParams(f *samplingFields, p *params) error {
	x := &f.llamaFields
	if v := x.NPredict; v != nil {
		if *v < -1 {
			return badRequest("n_predict", "n_predict %d must be >= -1", *v)
		}
		max := f.MaxTokens
		if f.MaxCompletionTokens != nil {
			max = f.MaxCompletionTokens
		}
		if max != nil && *max != *v && !(*max == 0 && *v == -1) {
			return badRequest("n_predict", "n_predict %d and max_tokens %d differ", *v, *max)
		}
		p.maxTokens = *v
		if *v <= 0 {
			p.maxTokens = -1 // unlimited, as llama-server does for 0 and -1
		}
	}
	sc := &p.sampler
	if v := x.RepetitionPenalty; v != nil {
		if f.RepeatPenalty != nil && *f.RepeatPenalty != *v {
			return badRequest("repetition_penalty", "repetition_penalty %v and repeat_penalty %v differ", *v, *f.RepeatPenalty)
		}
		if *v <= 0 || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return badRequest("repetition_penalty", "repetition_penalty %v must be > 0", *v)
		}
		sc.Repeat = float32(*v)
	}
	if v := x.MinKeep; v != nil {
		if *v < 0 {
			return badRequest("min_keep", "min_keep %d must be >= 0", *v)
		}
		sc.MinKeep = *v
	}
	var bias []model.TokenBias
	if len(bytes.TrimSpace(x.LogitBias)) > 0 {
		var err error
		if bias, err = parseLogitBias(x.LogitBias, s.tok.NumTokens()); err != nil {
			return err
		}
	}
	if x.IgnoreEOS != nil && *x.IgnoreEOS {
		p.ignoreEOS = true
		for id := range int32(s.tok.NumTokens()) {
			if s.tok.IsEOG(id) {
				bias = append(bias, model.TokenBias{ID: id, Bias: float32(math.Inf(-1))})
			}
		}
	}
	sc.LogitBias = bias
	return parseLogprobs(x, p)
}

// parseLogitBias reads OpenAI's logit_bias: an object of token id
// strings to numbers in [-100, 100], or null. -100 bans the token (a
// -Inf logit), as OpenAI documents.
func parseLogitBias(raw json.RawMessage, vocab int) ([]model.TokenBias, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, badRequest("logit_bias", "logit_bias must be an object of token ids to numbers")
	}
	out := make([]model.TokenBias, 0, len(m))
	for k, b := range m {
		id, err := strconv.ParseInt(k, 10, 32)
		if err != nil || id < 0 || int(id) >= vocab {
			return nil, badRequest("logit_bias", "logit_bias: %q is not a token id of this model (0..%d)", k, vocab-1)
		}
		if b < -100 || b > 100 || math.IsNaN(b) {
			return nil, badRequest("logit_bias", "logit_bias[%s] = %v must be in [-100, 100]", k, b)
		}
		bias := float32(b)
		if b == -100 {
			bias = float32(math.Inf(-1))
		}
		out = append(out, model.TokenBias{ID: int32(id), Bias: bias})
	}
	return out, nil
}
