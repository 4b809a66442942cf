package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/inference-x/inference-x/grammar"
	"github.com/inference-x/inference-x/toolcall"
)

// toolFields are the chat fields that shape the output: OpenAI's
// tool_choice and parallel_tool_calls, llama-server's reasoning_format.
type toolFields struct {
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	ReasoningFormat   string          `json:"reasoning_format"`
}

// toolFormat is the model's tool-call format, detected once from the
// chat template's source.
type toolFormat struct {
	once sync.Once
	f    toolcall.Format
}

// toolFormat returns the format of the server's chat template.
func (s *Server) toolFormat() toolcall.Format {
	s.tfmt.once.Do(func() { s.tfmt.f = toolcall.Detect(s.tmpl.Source()) })
	return s.tfmt.f
}

// requestTool is one entry of a request's tools.
type requestTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// outputParse says how a chat output is read back: nil, the text is all
// content (no tools or tool_choice none, and no reasoning to split).
type outputParse struct {
	f toolcall.Format
}

// parseTools reads the request's tools.
func parseTools(raw json.RawMessage) ([]toolcall.Tool, error) {
	if isNull(raw) {
		return nil, nil
	}
	var in []requestTool
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, badRequest("tools", "tools must be an array of {\"type\":\"function\",\"function\":{...}}: %v", err)
	}
	out := make([]toolcall.Tool, len(in))
	for i, t := range in {
		if t.Type != "function" && t.Type != "" {
			return nil, badRequest("tools", "tools[%d]: type %q: only \"function\" is supported", i, t.Type)
		}
		if t.Function.Name == "" {
			return nil, badRequest("tools", "tools[%d]: function.name is required", i)
		}
		out[i] = toolcall.Tool{Name: t.Function.Name, Parameters: t.Function.Parameters}
	}
	return out, nil
}

// toolChoice reads tool_choice: "none", "auto", "required" or
// {"type":"function","function":{"name":X}} (name returned).
func toolChoice(raw json.RawMessage) (choice, name string, err error) {
	if isNull(raw) {
		return "auto", "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "none", "auto", "required":
			return s, "", nil
		}
		return "", "", badRequest("tool_choice", "tool_choice %q: want none, auto, required or {\"type\":\"function\",\"function\":{\"name\":...}}", s)
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return "", "", badRequest("tool_choice", `tool_choice must be none, auto, required or {"type":"function","function":{"name":...}}`)
	}
	return "named", obj.Function.Name, nil
}

// chatOutput decides how the output of a chat request rendered as prompt
// is parsed, and for tool_choice required or a named function sets the
// grammar that forces the call.
func (s *Server) chatOutput(req *chatRequest, prompt string, p *params) (*outputParse, error) {
	tools, err := parseTools(req.Tools)
	if err != nil {
		return nil, err
	}
	choice, name, err := toolChoice(req.ToolChoice)
	if err != nil {
		return nil, err
	}
	f := s.toolFormat().WithPrompt(prompt)
	switch req.ReasoningFormat {
	case "", "auto", "deepseek", "deepseek-legacy":
	case "none":
		f.Think, f.EndThink, f.ThinkingOpen = "", "", false
	default:
		return nil, badRequest("reasoning_format", "reasoning_format %q: want none, auto or deepseek", req.ReasoningFormat)
	}
	if len(tools) == 0 || choice == "none" {
		if choice == "required" || choice == "named" {
			return nil, badRequest("tool_choice", "tool_choice %s needs tools", string(bytes.TrimSpace(req.ToolChoice)))
		}
		if f.Kind == toolcall.Harmony {
			return &outputParse{f: f}, nil // channels are always read
		}
		if f.Think == "" {
			return nil, nil
		}
		return &outputParse{f: toolcall.Format{Kind: toolcall.Content, Think: f.Think, EndThink: f.EndThink, ThinkingOpen: f.ThinkingOpen}}, nil
	}
	if choice == "auto" {
		return &outputParse{f: f}, nil
	}
	if choice == "named" {
		var one []toolcall.Tool
		for _, t := range tools {
			if t.Name == name {
				one = append(one, t)
				break
			}
		}
		if one == nil {
			return nil, badRequest("tool_choice", "tool_choice names function %q, which is not in tools", name)
		}
		tools = one
	}
	if p.grammar != nil {
		return nil, badRequest("tool_choice", "tool_choice %s and a grammar or response_format both constrain the output: give one", choice)
	}
	// The grammar starts at the call: the output does not open with reasoning.
	f.ThinkingOpen = false
	src, err := f.Grammar(tools, toolcall.GrammarOptions{
		Parallel: req.ParallelToolCalls == nil || *req.ParallelToolCalls,
		Token:    s.markerToken,
	})
	if errors.Is(err, toolcall.ErrNoGrammar) {
		return nil, badRequest("tool_choice", "tool_choice %s: the model's tool-call format (%s) can't be forced by a grammar", choice, f.Kind)
	}
	if err != nil {
		return nil, badRequest("tools", "tools: %v", err)
	}
	v, err := s.grammarVocab()
	if err != nil {
		return nil, err
	}
	g, err := grammar.ParseForVocab(src, v)
	if err != nil {
		return nil, badRequest("tools", "tools: the tool-call grammar: %v", err)
	}
	p.grammar, p.vocab = g, v
	return &outputParse{f: f}, nil
}

// markerToken writes a tool-call marker for a grammar: the token
// reference of a marker that is one token of the vocabulary (control
// tokens such as <|tool_calls_section_begin|>), else the literal text.
func (s *Server) markerToken(m string) string {
	if id, ok := s.tok.TokenID(m); ok {
		return fmt.Sprintf("<[%d]>", id)
	}
	return grammar.Literal(m)
}

// toolCallOut is an entry of message.tool_calls (and, with Index, of a
// streamed delta.tool_calls).
type toolCallOut struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// assemble splits a whole output into the message's content, reasoning
// and tool calls, and the finish reason ("tool_calls" when there are
// calls, else reason). A call cut short or with broken arguments is still
// returned (as llama-server does); its error is logged by the caller.
func (op *outputParse) assemble(text, reason string) (msg chatMessageOut, finish string, err error) {
	content, reasoning, calls, err := op.f.Parse(text)
	msg = chatMessageOut{Role: "assistant", ReasoningContent: reasoning}
	for _, c := range calls {
		var tc toolCallOut
		tc.ID, tc.Type = c.ID, "function"
		tc.Function.Name, tc.Function.Arguments = c.Name, c.Arguments
		msg.ToolCalls = append(msg.ToolCalls, tc)
	}
	if content != "" || len(calls) == 0 {
		msg.Content = &content
	}
	finish = reason
	if len(calls) > 0 && reason == "stop" {
		finish = "tool_calls"
	}
	return msg, finish, err
}

// streamParse reads a streamed output.
type streamParse struct {
	st    *toolcall.Stream
	calls int
}

func (op *outputParse) stream() *streamParse { return &streamParse{st: toolcall.NewStream(op.f)} }

// deltas turns stream events into chat deltas, merging runs of one kind.
func (sp *streamParse) deltas(evs []toolcall.Event) []chatDelta {
	var out []chatDelta
	for _, ev := range evs {
		switch ev.Kind {
		case toolcall.ContentDelta:
			t := ev.Text
			out = append(out, chatDelta{Content: &t})
		case toolcall.ReasoningDelta:
			t := ev.Text
			out = append(out, chatDelta{ReasoningContent: &t})
		case toolcall.ToolCallDelta:
			i := ev.Index
			var tc toolCallOut
			tc.Index, tc.ID = &i, ev.ID
			if ev.ID != "" || ev.Name != "" {
				tc.Type = "function"
			}
			tc.Function.Name, tc.Function.Arguments = ev.Name, ev.Arguments
			if ev.Index+1 > sp.calls {
				sp.calls = ev.Index + 1
			}
			out = append(out, chatDelta{ToolCalls: []toolCallOut{tc}})
		}
	}
	return out
}
