package server

import (
	"fmt"
	"strings"
	"testing"
)

func TestSamplingFieldErrors(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	cases := []struct{ name, body, param string }{
		{"n_predict differs", `{"prompt":"x","max_tokens":3,"n_predict":4}`, "n_predict"},
		{"n_predict negative", `{"prompt":"x","n_predict":-2}`, "n_predict"},
		{"repeat_penalty 0", `{"prompt":"x","repeat_penalty":0}`, "repeat_penalty"},
		{"repetition_penalty 0", `{"prompt":"x","repetition_penalty":0}`, "repetition_penalty"},
		{"repetition_penalty differs", `{"prompt":"x","repeat_penalty":1.1,"repetition_penalty":1.2}`, "repetition_penalty"},
		{"min_keep", `{"prompt":"x","min_keep":-1}`, "min_keep"},
		{"logit_bias id", `{"prompt":"x","logit_bias":{"abc":1}}`, "logit_bias"},
		{"logit_bias range id", `{"prompt":"x","logit_bias":{"999999":1}}`, "logit_bias"},
		{"logit_bias value", `{"prompt":"x","logit_bias":{"5":101}}`, "logit_bias"},
		{"logit_bias shape", `{"prompt":"x","logit_bias":[1]}`, "logit_bias"},
		{"ignore_eos type", `{"prompt":"x","ignore_eos":"yes"}`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := expectError(t, ts.post(t, "/v1/completions", c.body), 400, "")
			if c.param != "" && (e.Error.Param == nil || *e.Error.Param != c.param) {
				t.Errorf("param %v, want %q (%s)", e.Error.Param, c.param, e.Error.Message)
			}
		})
	}
	// Accepted: unknown fields, cache_prompt, equal aliases.
	for _, body := range []string{
		`{"prompt":"x","max_tokens":2,"cache_prompt":true,"no_such_field":{"a":1}}`,
		`{"prompt":"x","max_tokens":2,"n_predict":2,"repeat_penalty":1.1,"repetition_penalty":1.1,"min_keep":2}`,
	} {
		if resp := ts.post(t, "/v1/completions", body); resp.StatusCode != 200 {
			t.Errorf("%s: status %d", body, resp.StatusCode)
		}
	}
}

func TestSamplingFields(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	complete := func(body string) completionBody {
		t.Helper()
		resp := ts.post(t, "/v1/completions", body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", body, resp.StatusCode)
		}
		return decode[completionBody](t, resp)
	}
	const prompt = `"prompt":"Lily and Tom went to the","temperature":0`
	// n_predict is max_tokens.
	if c := complete(`{` + prompt + `,"n_predict":5}`); c.Usage.CompletionTokens != 5 || *c.Choices[0].FinishReason != "length" {
		t.Errorf("n_predict 5: usage %+v finish %s", c.Usage, *c.Choices[0].FinishReason)
	}
	// logit_bias +100 on one token makes greedy pick it every step.
	const id = 300
	piece := ts.tok.TokenToPiece(id, false)
	c := complete(fmt.Sprintf(`{%s,"max_tokens":4,"logit_bias":{"%d":100}}`, prompt, id))
	if got := c.Choices[0].Text; got != strings.Repeat(piece, 4) {
		t.Errorf("biased +100 to %d (%q): text %q", id, piece, got)
	}
	// -100 bans: greedy's first token " park" never comes.
	base := complete(`{` + prompt + `,"max_tokens":1,"logprobs":null}`).Choices[0].Text
	first := int32(-1)
	for i := range int32(ts.tok.NumTokens()) {
		if ts.tok.TokenToPiece(i, false) == base {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatalf("no token has the piece %q", base)
	}
	c = complete(fmt.Sprintf(`{%s,"max_tokens":1,"logit_bias":{"%d":-100}}`, prompt, first))
	if c.Choices[0].Text == base {
		t.Errorf("banned token %d (%q) was generated", first, base)
	}
	// End of generation biased up: the request stops at once, unless
	// ignore_eos bans it and the budget ends it.
	eos := ts.tok.EOS()
	c = complete(fmt.Sprintf(`{%s,"max_tokens":6,"logit_bias":{"%d":100}}`, prompt, eos))
	if c.Usage.CompletionTokens != 0 || *c.Choices[0].FinishReason != "stop" {
		t.Errorf("eos +100: usage %+v finish %s", c.Usage, *c.Choices[0].FinishReason)
	}
	c = complete(fmt.Sprintf(`{%s,"max_tokens":6,"ignore_eos":true,"logit_bias":{"%d":100}}`, prompt, eos))
	if c.Usage.CompletionTokens != 6 || *c.Choices[0].FinishReason != "length" {
		t.Errorf("ignore_eos: usage %+v finish %s", c.Usage, *c.Choices[0].FinishReason)
	}
}
