package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/grammar"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/server/scheduler"
	"github.com/inference-x/inference-x/toolcall"
)

// qwen3Server serves stories260K with Qwen3's real chat template (hermes
// tool calls, <think> reasoning).
func qwen3Server(t *testing.T) *testServer {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.Shared(t, "testdata/chat-templates"), "qwen3.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Compile(string(src))
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, serverOpts{template: tmpl,
		sched: scheduler.Config{Slots: 2, Ctx: 2048, KV: model.KVF32, MaxBatch: 64, Queue: 16, Threads: 2}})
}

const weatherParams = `{"type":"object","properties":{"city":{"type":"string","maxLength":12},"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","days"],"additionalProperties":false}`

const weatherTools = `[{"type":"function","function":{"name":"get_weather","parameters":` + weatherParams + `}},` +
	`{"type":"function","function":{"name":"other","parameters":` + otherParams + `}}]`

const otherParams = `{"type":"object","properties":{"q":{"type":"boolean"}},"required":["q"],"additionalProperties":false}`

type toolCallBody struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type toolChatBody struct {
	Choices []struct {
		Message struct {
			Content          *string        `json:"content"`
			ReasoningContent string         `json:"reasoning_content"`
			ToolCalls        []toolCallBody `json:"tool_calls"`
		} `json:"message"`
		Delta struct {
			Content          *string        `json:"content"`
			ReasoningContent *string        `json:"reasoning_content"`
			ToolCalls        []toolCallBody `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
}

// TestToolChoiceNamed: a named tool_choice forces a call by grammar, so
// even stories260K's output is a call of that function whose arguments
// validate against its schema; streamed, the deltas reassemble to it.
func TestToolChoiceNamed(t *testing.T) {
	ts := qwen3Server(t)
	for _, seed := range []int{1, 2, 3} {
		body := `{"messages":[{"role":"user","content":"weather?"}],"tools":` + weatherTools +
			`,"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false,"max_tokens":200,"seed":` +
			string(rune('0'+seed)) + `}`
		resp := ts.post(t, "/v1/chat/completions", body)
		if resp.StatusCode != 200 {
			expectError(t, resp, 200, "")
		}
		c := decode[toolChatBody](t, resp)
		ch := c.Choices[0]
		if ch.FinishReason == nil || *ch.FinishReason != "tool_calls" {
			t.Fatalf("finish_reason %v, want tool_calls", ch.FinishReason)
		}
		if len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("tool_calls %+v, want one", ch.Message.ToolCalls)
		}
		tc := ch.Message.ToolCalls[0]
		if tc.Type != "function" || tc.Function.Name != "get_weather" || !strings.HasPrefix(tc.ID, "call_") {
			t.Errorf("call %+v", tc)
		}
		if err := grammar.Validate([]byte(weatherParams), []byte(tc.Function.Arguments)); err != nil {
			t.Errorf("arguments %s: %v", tc.Function.Arguments, err)
		}
		if ch.Message.Content != nil {
			t.Errorf("content %q, want null beside the call", *ch.Message.Content)
		}

		// Streamed with the same seed: the same call in fragments.
		events, done := sse(t, ts.post(t, "/v1/chat/completions", strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)))
		if !done {
			t.Fatal("stream without [DONE]")
		}
		var name, args, id, finish string
		for _, e := range events {
			var ev toolChatBody
			if err := json.Unmarshal([]byte(e), &ev); err != nil {
				t.Fatal(err)
			}
			d := ev.Choices[0].Delta
			for _, x := range d.ToolCalls {
				if x.Index == nil || *x.Index != 0 {
					t.Errorf("delta index %v", x.Index)
				}
				if x.ID != "" {
					if id != "" {
						t.Errorf("id sent twice")
					}
					id = x.ID
					if x.Type != "function" {
						t.Errorf("first delta type %q", x.Type)
					}
				}
				name += x.Function.Name
				args += x.Function.Arguments
			}
			if f := ev.Choices[0].FinishReason; f != nil {
				finish = *f
			}
		}
		if name != "get_weather" || args != tc.Function.Arguments || id == "" || finish != "tool_calls" {
			t.Errorf("streamed name %q args %q id %q finish %q; want %q", name, args, id, finish, tc.Function.Arguments)
		}
	}
}

// TestToolChoiceErrors: bad tool requests are 400s naming the field.
func TestToolChoiceErrors(t *testing.T) {
	ts := qwen3Server(t)
	msgs := `"messages":[{"role":"user","content":"x"}]`
	for _, tc := range []struct{ body, param, want string }{
		{`{` + msgs + `,"tools":` + weatherTools + `,"tool_choice":{"type":"function","function":{"name":"nope"}}}`, "tool_choice", "nope"},
		{`{` + msgs + `,"tool_choice":"required"}`, "tool_choice", "needs tools"},
		{`{` + msgs + `,"tools":` + weatherTools + `,"tool_choice":"sometimes"}`, "tool_choice", "sometimes"},
		{`{` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}}}}}],"tool_choice":"required"}`, "tools", "tools"},
		{`{` + msgs + `,"tools":[{"type":"function","function":{}}]}`, "tools", "name"},
		{`{` + msgs + `,"reasoning_format":"weird"}`, "reasoning_format", "weird"},
		{`{` + msgs + `,"tools":` + weatherTools + `,"tool_choice":"required","grammar":"root ::= \"a\""}`, "tool_choice", "both"},
	} {
		e := expectError(t, ts.post(t, "/v1/chat/completions", tc.body), 400, "")
		if e.Error.Param == nil || *e.Error.Param != tc.param || !strings.Contains(e.Error.Message, tc.want) {
			t.Errorf("%s: param %v message %q, want %s / %q", tc.body, e.Error.Param, e.Error.Message, tc.param, tc.want)
		}
	}
}

// TestAssemble reads Qwen3-shaped outputs (real marker strings) into the
// message: reasoning, content, calls and the finish reason.
func TestAssemble(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.Shared(t, "testdata/chat-templates"), "qwen3.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	op := &outputParse{f: toolcall.Detect(string(src))}
	msg, finish, err := op.assemble("<think>\nthe user wants weather\n</think>\n\nChecking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>", "stop")
	if err != nil {
		t.Fatal(err)
	}
	if msg.ReasoningContent != "the user wants weather" || msg.Content == nil || *msg.Content != "Checking." || finish != "tool_calls" {
		t.Errorf("reasoning %q content %v finish %q", msg.ReasoningContent, msg.Content, finish)
	}
	if len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" || msg.ToolCalls[0].Function.Arguments != `{"city": "Oslo"}` {
		t.Errorf("calls %+v", msg.ToolCalls)
	}
	// No calls: content stays a string, the reason is kept.
	msg, finish, _ = op.assemble("<think>hm</think>Hello", "length")
	if msg.Content == nil || *msg.Content != "Hello" || msg.ReasoningContent != "hm" || finish != "length" {
		t.Errorf("content %v reasoning %q finish %q", msg.Content, msg.ReasoningContent, finish)
	}
}

// TestToolResultsRender: an assistant message with tool_calls (arguments
// as OpenAI sends them, a JSON string) and the tool's result render
// through Qwen3's template as its tool-call and tool-response blocks.
func TestToolResultsRender(t *testing.T) {
	ts := qwen3Server(t)
	body := `{"messages":[{"role":"user","content":"weather in Oslo?"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\",\"days\":2}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"sunny"}],"tools":` + weatherTools + `}`
	got := decode[struct {
		Prompt string `json:"prompt"`
	}](t, ts.post(t, "/apply-template", body))
	for _, want := range []string{`"name": "get_weather"`, `"city": "Oslo"`, "<tool_response>\nsunny\n</tool_response>", "<tools>"} {
		if !strings.Contains(got.Prompt, want) {
			t.Errorf("prompt lacks %q:\n%s", want, got.Prompt)
		}
	}
}

// TestReasoningSplit: with Qwen3's template the <think> part of the
// output (forced here by a grammar) is reasoning_content, the rest the
// content; reasoning_format none keeps it all in content; streamed, the
// reasoning comes as delta.reasoning_content.
func TestReasoningSplit(t *testing.T) {
	ts := qwen3Server(t)
	body := `{"messages":[{"role":"user","content":"hi"}],"seed":4,"max_tokens":100,` +
		`"grammar":"root ::= \"<think>\" [a-z]{3,8} \"</think>\" [a-z]{3,8}"`
	c := decode[toolChatBody](t, ts.post(t, "/v1/chat/completions", body+`}`))
	m := c.Choices[0].Message
	if m.ReasoningContent == "" || m.Content == nil || *m.Content == "" || strings.Contains(*m.Content, "think>") {
		t.Fatalf("reasoning %q content %v", m.ReasoningContent, m.Content)
	}
	raw := decode[toolChatBody](t, ts.post(t, "/v1/chat/completions", body+`,"reasoning_format":"none"}`))
	if want := "<think>" + m.ReasoningContent + "</think>" + *m.Content; raw.Choices[0].Message.Content == nil || *raw.Choices[0].Message.Content != want {
		t.Errorf("reasoning_format none: content %v, want %q", raw.Choices[0].Message.Content, want)
	}
	events, _ := sse(t, ts.post(t, "/v1/chat/completions", body+`,"stream":true}`))
	var reasoning, content string
	for _, e := range events {
		var ev toolChatBody
		if err := json.Unmarshal([]byte(e), &ev); err != nil {
			t.Fatal(err)
		}
		if d := ev.Choices[0].Delta; d.ReasoningContent != nil {
			reasoning += *d.ReasoningContent
		} else if d.Content != nil {
			content += *d.Content
		}
	}
	if reasoning != m.ReasoningContent || content != *m.Content {
		t.Errorf("streamed reasoning %q content %q, want %q %q", reasoning, content, m.ReasoningContent, *m.Content)
	}
}

// TestToolChoiceRequired: required forces a call of one of the tools,
// valid against its function's schema (parallel_tool_calls false: one).
func TestToolChoiceRequired(t *testing.T) {
	ts := qwen3Server(t)
	schemas := map[string]string{"get_weather": weatherParams, "other": otherParams}
	for seed := 1; seed <= 3; seed++ {
		c := decode[toolChatBody](t, ts.post(t, "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}],"tools":`+
			weatherTools+`,"tool_choice":"required","parallel_tool_calls":false,"max_tokens":300,"seed":`+string(rune('0'+seed))+`}`))
		ch := c.Choices[0]
		if len(ch.Message.ToolCalls) != 1 || ch.FinishReason == nil || *ch.FinishReason != "tool_calls" {
			t.Fatalf("tool_calls %+v finish %v, want one call and tool_calls", ch.Message.ToolCalls, ch.FinishReason)
		}
		tc := ch.Message.ToolCalls[0]
		schema, ok := schemas[tc.Function.Name]
		if !ok {
			t.Fatalf("call of %q", tc.Function.Name)
		}
		if err := grammar.Validate([]byte(schema), []byte(tc.Function.Arguments)); err != nil {
			t.Errorf("%s arguments %s: %v", tc.Function.Name, tc.Function.Arguments, err)
		}
	}
}

// TestToolChoiceAutoNone: a call in the output (written here by a GBNF
// grammar) is parsed with tool_choice auto and left as content with none.
func TestToolChoiceAutoNone(t *testing.T) {
	ts := qwen3Server(t)
	call := `<tool_call>\n{\"name\": \"other\", \"arguments\": {\"q\": true}}\n</tool_call>`
	body := `{"messages":[{"role":"user","content":"x"}],"tools":` + weatherTools +
		`,"grammar":"root ::= [a-z]{2,5} \"\\n` + strings.ReplaceAll(strings.ReplaceAll(call, `\`, `\\`), `"`, `\"`) + `\""`
	c := decode[toolChatBody](t, ts.post(t, "/v1/chat/completions", body+`,"tool_choice":"auto"}`))
	ch := c.Choices[0]
	if len(ch.Message.ToolCalls) != 1 || ch.Message.ToolCalls[0].Function.Name != "other" ||
		ch.Message.ToolCalls[0].Function.Arguments != `{"q": true}` || *ch.FinishReason != "tool_calls" {
		t.Fatalf("auto: calls %+v finish %v", ch.Message.ToolCalls, *ch.FinishReason)
	}
	if ch.Message.Content == nil || *ch.Message.Content == "" || strings.Contains(*ch.Message.Content, "tool_call") {
		t.Errorf("auto: content %v, want the text before the call", ch.Message.Content)
	}
	c = decode[toolChatBody](t, ts.post(t, "/v1/chat/completions", body+`,"tool_choice":"none"}`))
	ch = c.Choices[0]
	if len(ch.Message.ToolCalls) != 0 || *ch.FinishReason != "stop" || ch.Message.Content == nil ||
		!strings.Contains(*ch.Message.Content, "<tool_call>") {
		t.Errorf("none: calls %+v finish %q content %v", ch.Message.ToolCalls, *ch.FinishReason, ch.Message.Content)
	}
}

// TestMarkerToken: a marker that is one token of the vocabulary (here
// stories260K's control token <s>) becomes its <[id]> reference; others
// are literal text.
func TestMarkerToken(t *testing.T) {
	ts := newTestServer(t, serverOpts{noRun: true})
	id, ok := ts.tok.TokenID("<s>")
	if !ok {
		t.Fatal("stories260K has no <s>")
	}
	if got, want := ts.srv.markerToken("<s>"), "<["+strconv.Itoa(int(id))+"]>"; got != want {
		t.Errorf("markerToken(<s>) = %s, want %s", got, want)
	}
	if got := ts.srv.markerToken("<tool_call>"); got != `"<tool_call>"` {
		t.Errorf("markerToken(<tool_call>) = %s, want the literal", got)
	}
}

// TestEnableThinking: chat_template_kwargs reach Qwen3's template, whose
// enable_thinking false writes an empty think block into the prompt.
func TestEnableThinking(t *testing.T) {
	ts := qwen3Server(t)
	type prompt struct {
		Prompt string `json:"prompt"`
	}
	msgs := `{"messages":[{"role":"user","content":"hi"}]`
	off := decode[prompt](t, ts.post(t, "/apply-template", msgs+`,"chat_template_kwargs":{"enable_thinking":false}}`))
	on := decode[prompt](t, ts.post(t, "/apply-template", msgs+`}`))
	if !strings.HasSuffix(off.Prompt, "<think>\n\n</think>\n\n") || strings.Contains(on.Prompt, "<think>") {
		t.Errorf("enable_thinking false: %q; default: %q", off.Prompt, on.Prompt)
	}
}

// TestToolChoiceNamedN: with n > 1 every choice is parsed the same way,
// streamed (per choice index) and not.
func TestToolChoiceNamedN(t *testing.T) {
	ts := qwen3Server(t)
	body := `{"messages":[{"role":"user","content":"weather?"}],"tools":` + weatherTools +
		`,"tool_choice":{"type":"function","function":{"name":"get_weather"}},"parallel_tool_calls":false,"max_tokens":200,"seed":5,"n":2}`
	resp := ts.post(t, "/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		expectError(t, resp, 200, "")
	}
	c := decode[toolChatBody](t, resp)
	if len(c.Choices) != 2 {
		t.Fatalf("%d choices, want 2", len(c.Choices))
	}
	for i, ch := range c.Choices {
		if ch.FinishReason == nil || *ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 ||
			ch.Message.ToolCalls[0].Function.Name != "get_weather" {
			t.Errorf("choice %d: finish %v, calls %+v", i, ch.FinishReason, ch.Message.ToolCalls)
		}
	}
	events, done := sse(t, ts.post(t, "/v1/chat/completions", strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)))
	if !done {
		t.Fatal("stream without [DONE]")
	}
	type acc struct{ name, args, finish string }
	got := map[int]*acc{}
	for _, e := range events {
		var ev struct {
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					ToolCalls []toolCallBody `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(e), &ev); err != nil {
			t.Fatal(err)
		}
		for _, ch := range ev.Choices {
			a := got[ch.Index]
			if a == nil {
				a = &acc{}
				got[ch.Index] = a
			}
			for _, x := range ch.Delta.ToolCalls {
				a.name += x.Function.Name
				a.args += x.Function.Arguments
			}
			if ch.FinishReason != nil {
				a.finish = *ch.FinishReason
			}
		}
	}
	for i := 0; i < 2; i++ {
		a := got[i]
		if a == nil || a.name != "get_weather" || a.finish != "tool_calls" {
			t.Errorf("streamed choice %d: %+v", i, a)
			continue
		}
		if err := grammar.Validate([]byte(weatherParams), []byte(a.args)); err != nil {
			t.Errorf("streamed choice %d arguments %s: %v", i, a.args, err)
		}
	}
}
