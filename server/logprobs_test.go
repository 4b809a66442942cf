package server

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/model"
)

type logprobsBody struct {
	Choices []struct {
		Logprobs *struct {
			Content []struct {
				Token       string  `json:"token"`
				Logprob     float64 `json:"logprob"`
				Bytes       []int   `json:"bytes"`
				TopLogprobs []struct {
					Token   string  `json:"token"`
					Logprob float64 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func TestLogprobs(t *testing.T) {
	var m *model.Model
	ts := newTestServer(t, serverOpts{configure: func(mm *model.Model, _ *Config, _ *Deps) { m = mm }})
	const prompt = "Lily and Tom went to the"
	// The first token's distribution, straight from the model.
	toks := ts.tok.Encode(prompt, true, true)
	r := m.NewRunner(model.Options{Threads: 2, MaxBatch: 16})
	defer r.Close()
	seq, _ := m.NewSequence(64, model.KVF32)
	var last []float32
	if err := r.Eval(context.Background(), seq, toks, true, func(_ int, l []float32) error {
		last = append(last[:0], l...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	best, mx := 0, last[0]
	for i, l := range last {
		if l > mx {
			best, mx = i, l
		}
	}
	var sum float64
	for _, l := range last {
		sum += math.Exp(float64(l - mx))
	}
	want := -math.Log(sum) // log-softmax of the argmax

	// Completions: logprobs N.
	resp := ts.post(t, "/v1/completions", `{"prompt":"`+prompt+`","temperature":0,"max_tokens":4,"logprobs":5}`)
	c := decode[logprobsBody](t, resp)
	lp := c.Choices[0].Logprobs
	if lp == nil || len(lp.Tokens) != 4 || len(lp.TokenLogprobs) != 4 || len(lp.TopLogprobs) != 4 || len(lp.TextOffset) != 4 {
		t.Fatalf("completion logprobs %+v", lp)
	}
	if lp.Tokens[0] != ts.tok.TokenToPiece(int32(best), false) || math.Abs(lp.TokenLogprobs[0]-want) > 1e-3 {
		t.Errorf("first token %q logprob %v, want %q %v", lp.Tokens[0], lp.TokenLogprobs[0], ts.tok.TokenToPiece(int32(best), false), want)
	}
	for i := range lp.Tokens {
		if lp.TokenLogprobs[i] > 0 || len(lp.TopLogprobs[i]) == 0 || len(lp.TopLogprobs[i]) > 5 {
			t.Errorf("token %d: logprob %v top %v", i, lp.TokenLogprobs[i], lp.TopLogprobs[i])
		}
		if got, ok := lp.TopLogprobs[i][lp.Tokens[i]]; !ok || math.Abs(got-lp.TokenLogprobs[i]) > 1e-6 {
			t.Errorf("token %d %q not among its top_logprobs %v", i, lp.Tokens[i], lp.TopLogprobs[i])
		}
		if i > 0 && lp.TextOffset[i] != lp.TextOffset[i-1]+len(lp.Tokens[i-1]) {
			t.Errorf("text_offset %v for tokens %q", lp.TextOffset, lp.Tokens)
		}
	}

	// Chat: logprobs true + top_logprobs, at temperature 0 the chosen
	// token is the best alternative.
	resp = ts.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5,"logprobs":true,"top_logprobs":3}`)
	ch := decode[logprobsBody](t, resp)
	cl := ch.Choices[0].Logprobs
	if cl == nil || len(cl.Content) != ch.Usage.CompletionTokens || len(cl.Content) == 0 {
		t.Fatalf("chat logprobs %+v usage %+v", cl, ch.Usage)
	}
	for i, e := range cl.Content {
		if math.Exp(e.Logprob) > 1 || len(e.TopLogprobs) != 3 || len(e.Bytes) != len(e.Token) {
			t.Fatalf("entry %d %+v", i, e)
		}
		for k := 1; k < len(e.TopLogprobs); k++ {
			if e.TopLogprobs[k].Logprob > e.TopLogprobs[k-1].Logprob {
				t.Errorf("entry %d top_logprobs not sorted: %+v", i, e.TopLogprobs)
			}
		}
		if e.TopLogprobs[0].Token != e.Token || e.TopLogprobs[0].Logprob != e.Logprob {
			t.Errorf("entry %d: chosen %q %v, best %+v", i, e.Token, e.Logprob, e.TopLogprobs[0])
		}
	}
	// Without logprobs: null.
	resp = ts.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}`)
	if c := decode[logprobsBody](t, resp); c.Choices[0].Logprobs != nil {
		t.Errorf("logprobs %+v without asking", c.Choices[0].Logprobs)
	}

	// Streamed: the chunks' logprobs cover every token once.
	resp = ts.post(t, "/v1/completions", `{"prompt":"`+prompt+`","temperature":0,"max_tokens":6,"n_probs":2,"stream":true}`)
	events, _ := sse(t, resp)
	var streamed []string
	for _, ev := range events {
		var b logprobsBody
		if err := json.Unmarshal([]byte(ev), &b); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if len(b.Choices) > 0 && b.Choices[0].Logprobs != nil {
			streamed = append(streamed, b.Choices[0].Logprobs.Tokens...)
		}
	}
	if len(streamed) != 6 || !strings.HasPrefix(strings.Join(streamed, ""), lp.Tokens[0]) {
		t.Errorf("streamed logprob tokens %q", streamed)
	}
	resp = ts.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":5,"logprobs":true,"top_logprobs":3,"stream":true}`)
	events, _ = sse(t, resp)
	n := 0
	for _, ev := range events {
		var b logprobsBody
		if err := json.Unmarshal([]byte(ev), &b); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if len(b.Choices) > 0 && b.Choices[0].Logprobs != nil {
			n += len(b.Choices[0].Logprobs.Content)
		}
	}
	if n != len(cl.Content) {
		t.Errorf("streamed chat logprobs cover %d tokens, the body %d", n, len(cl.Content))
	}
}

func TestLogprobsErrors(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	for body, param := range map[string]string{
		`{"prompt":"x","logprobs":21}`:                                   "logprobs",
		`{"prompt":"x","logprobs":"yes"}`:                                "logprobs",
		`{"prompt":"x","logprobs":true,"top_logprobs":21}`:               "top_logprobs",
		`{"prompt":"x","top_logprobs":2}`:                                "top_logprobs",
		`{"prompt":"x","n_probs":-1}`:                                    "n_probs",
		`{"messages":[{"role":"user","content":"x"}],"logprobs":-1}`:     "logprobs",
		`{"messages":[{"role":"user","content":"x"}],"top_logprobs":-1}`: "top_logprobs",
	} {
		path := "/v1/completions"
		if strings.Contains(body, "messages") {
			path = "/v1/chat/completions"
		}
		e := expectError(t, ts.post(t, path, body), 400, "")
		if e.Error.Param == nil || *e.Error.Param != param {
			t.Errorf("%s: param %v, want %q", body, e.Error.Param, param)
		}
	}
}
