package server

import (
	"encoding/json"
	"strings"
	"testing"
)

type nBody struct {
	Choices []struct {
		Index        int    `json:"index"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Tokens []string `json:"tokens"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

func TestChoicesN(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	const body = `"prompt":"Lily and Tom went to the","temperature":1,"seed":5,"max_tokens":12`
	one := decode[completionBody](t, ts.post(t, "/v1/completions", `{`+body+`}`))
	resp := ts.post(t, "/v1/completions", `{`+body+`,"n":3,"logprobs":1}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c := decode[nBody](t, resp)
	if len(c.Choices) != 3 {
		t.Fatalf("%d choices", len(c.Choices))
	}
	total := 0
	for i, ch := range c.Choices {
		if ch.Index != i || ch.FinishReason == "" || ch.Logprobs == nil || strings.Join(ch.Logprobs.Tokens, "") == "" {
			t.Errorf("choice %d: %+v", i, ch)
		}
		if ch.Logprobs != nil {
			total += len(ch.Logprobs.Tokens)
		}
	}
	if c.Choices[0].Text != one.Choices[0].Text {
		t.Errorf("choice 0 %q, n=1 answer %q (same seed)", c.Choices[0].Text, one.Choices[0].Text)
	}
	if c.Choices[1].Text == c.Choices[0].Text && c.Choices[2].Text == c.Choices[0].Text {
		t.Errorf("three choices drew the same text %q", c.Choices[0].Text)
	}
	if c.Usage.PromptTokens != one.Usage.PromptTokens || c.Usage.CompletionTokens != total ||
		c.Usage.TotalTokens != c.Usage.PromptTokens+total {
		t.Errorf("usage %+v, want prompt %d once and %d completion tokens", c.Usage, one.Usage.PromptTokens, total)
	}

	// Streamed chat: every chunk names its choice; each ends once.
	resp = ts.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"n":2,"max_tokens":6,"stream":true,"stream_options":{"include_usage":true}}`)
	events, done := sse(t, resp)
	if !done {
		t.Fatal("no [DONE]")
	}
	finished := map[int]int{}
	content := map[int]int{}
	sawUsage := false
	for _, ev := range events {
		var b struct {
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Content *string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(ev), &b); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		if b.Usage != nil {
			sawUsage = true
		}
		for _, ch := range b.Choices {
			if ch.FinishReason != nil {
				finished[ch.Index]++
			}
			if ch.Delta.Content != nil && *ch.Delta.Content != "" {
				content[ch.Index]++
			}
		}
	}
	if finished[0] != 1 || finished[1] != 1 || len(finished) != 2 || content[0] == 0 || content[1] == 0 || !sawUsage {
		t.Errorf("finish per index %v, content chunks %v, usage %v", finished, content, sawUsage)
	}

	for _, n := range []string{"0", "5", "-1"} {
		e := expectError(t, ts.post(t, "/v1/completions", `{"prompt":"x","n":`+n+`}`), 400, "")
		if e.Error.Param == nil || *e.Error.Param != "n" {
			t.Errorf("n=%s: param %v", n, e.Error.Param)
		}
	}
}
