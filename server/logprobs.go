package server

import (
	"bytes"
	"encoding/json"
	"math"

	"github.com/inference-x/inference-x/server/scheduler"
)

// maxTopLogprobs bounds top_logprobs, logprobs N and n_probs (OpenAI
// allows 20 for chat and 5 for completions; both get 20 here).
const maxTopLogprobs = 20

// parseLogprobs reads logprobs (chat's boolean or completions' integer
// N), top_logprobs and llama-server's n_probs into p.
func parseLogprobs(x *llamaFields, p *params) error {
	raw := bytes.TrimSpace(x.Logprobs)
	top := 0
	switch {
	case len(raw) == 0 || string(raw) == "null" || string(raw) == "false":
	case string(raw) == "true":
		p.logprobs = true
	default:
		var n int
		if err := json.Unmarshal(raw, &n); err != nil || n < 0 || n > maxTopLogprobs {
			return badRequest("logprobs", "logprobs must be a boolean or an integer in [0, %d]", maxTopLogprobs)
		}
		p.logprobs, top = true, n
	}
	if v := x.TopLogprobs; v != nil {
		if *v < 0 || *v > maxTopLogprobs {
			return badRequest("top_logprobs", "top_logprobs %d must be in [0, %d]", *v, maxTopLogprobs)
		}
		if !p.logprobs && *v > 0 {
			return badRequest("top_logprobs", "top_logprobs needs logprobs: true")
		}
		top = *v
	}
	if v := x.NProbs; v != nil {
		if *v < 0 || *v > maxTopLogprobs {
			return badRequest("n_probs", "n_probs %d must be in [0, %d]", *v, maxTopLogprobs)
		}
		if *v > 0 {
			p.logprobs, top = true, *v
		}
	}
	p.topLogprobs = top
	return nil
}

// logprobOut is one token in chat's choices[].logprobs.content.
type logprobOut struct {
	Token       string       `json:"token"`
	Logprob     float32      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// chatLogprobs is chat's choices[].logprobs.
type chatLogprobs struct {
	Content []logprobOut `json:"content"`
	Refusal []logprobOut `json:"refusal"`
}

// completionLogprobs is completions' choices[].logprobs.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// logprobAcc gathers the logprobs of generated tokens until a response
// chunk takes them. A nil *logprobAcc is off: take returns nil (JSON
// null, as OpenAI answers without logprobs).
type logprobAcc struct {
	s      *Server
	isChat bool
	chat   []logprobOut
	cmpl   completionLogprobs
	offset int // bytes of completion text so far (text_offset)
}

// add records a token event.
func (a *logprobAcc) add(ev scheduler.Event) {
	if a == nil {
		return
	}
	piece := a.s.tok.TokenToPiece(ev.Token, false)
	if a.isChat {
		top := make([]topLogprob, len(ev.Top))
		for i, t := range ev.Top {
			p := a.s.tok.TokenToPiece(t.ID, false)
			top[i] = topLogprob{Token: p, Logprob: finiteLogprob(t.Logprob), Bytes: byteInts(p)}
		}
		a.chat = append(a.chat, logprobOut{Token: piece, Logprob: finiteLogprob(ev.Logprob), Bytes: byteInts(piece), TopLogprobs: top})
		return
	}
	c := &a.cmpl
	c.Tokens = append(c.Tokens, piece)
	c.TokenLogprobs = append(c.TokenLogprobs, finiteLogprob(ev.Logprob))
	top := make(map[string]float32, len(ev.Top))
	for _, t := range ev.Top {
		p := a.s.tok.TokenToPiece(t.ID, false)
		if _, dup := top[p]; !dup {
			top[p] = finiteLogprob(t.Logprob)
		}
	}
	c.TopLogprobs = append(c.TopLogprobs, top)
	c.TextOffset = append(c.TextOffset, a.offset)
	a.offset += len(piece)
}

// take returns what was gathered since the last take (nil when off).
func (a *logprobAcc) take() any {
	if a == nil {
		return nil
	}
	if a.isChat {
		out := &chatLogprobs{Content: a.chat}
		if out.Content == nil {
			out.Content = []logprobOut{}
		}
		a.chat = nil
		return out
	}
	out := a.cmpl
	a.cmpl = completionLogprobs{}
	if out.Tokens == nil {
		out = completionLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
	}
	return &out
}

// finiteLogprob maps -Inf (a banned or masked token) to -9999, the value
// OpenAI uses, since JSON has no infinity.
func finiteLogprob(l float32) float32 {
	if math.IsInf(float64(l), -1) || math.IsNaN(float64(l)) || l < -9999 {
		return -9999
	}
	return l
}

func byteInts(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}
