package toolcall

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func seqID(i int) string { return fmt.Sprintf("call_%d", i) }

type tcase struct {
	name      string
	f         Format
	text      string
	content   string
	reasoning string
	calls     []Call // IDs: seqID unless the format has its own
	err       error
}

func fm(k Kind) Format { return Format{Kind: k, NewID: seqID} }

func think(f Format) Format { f.Think, f.EndThink = "<think>", "</think>"; return f }

func open(f Format) Format { f.ThinkingOpen = true; return f }

func c(i int, name, args string) Call { return Call{ID: seqID(i), Name: name, Arguments: args} }

var cases = []tcase{
	// Hermes / Qwen
	{name: "hermes/one", f: fm(Hermes),
		text:  "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
		calls: []Call{c(0, "get_weather", `{"city": "Paris"}`)}},
	{name: "hermes/several+text", f: fm(Hermes),
		text:    "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"q\": {\"deep\": [1, {\"x\": \"}\"}]}, \"s\": \"é漢字🙂\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>",
		content: "Let me check.",
		calls:   []Call{c(0, "a", `{"q": {"deep": [1, {"x": "}"}]}, "s": "é漢字🙂"}`), c(1, "b", `{}`)}},
	{name: "hermes/other-key-order", f: fm(Hermes),
		text:  `<tool_call>{"arguments": {"x": 1}, "name": "f"}</tool_call>`,
		calls: []Call{c(0, "f", `{"x": 1}`)}},
	{name: "hermes/qwen3-think", f: think(fm(Hermes)),
		text:      "<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{\"name\": \"w\", \"arguments\": {\"c\": \"Zürich\"}}\n</tool_call>",
		reasoning: "The user wants weather.",
		calls:     []Call{c(0, "w", `{"c": "Zürich"}`)}},
	{name: "hermes/think-open", f: open(think(fm(Hermes))),
		text:      "reasoning here\n</think>\n\nAnswer.",
		reasoning: "reasoning here", content: "Answer."},
	{name: "hermes/think-unclosed", f: open(think(fm(Hermes))),
		text: "still thinking <", reasoning: "still thinking <"},
	{name: "hermes/malformed", f: fm(Hermes),
		text: "x <tool_call>not json</tool_call> y", content: "x <tool_call>not json</tool_call> y"},
	{name: "hermes/truncated-args", f: fm(Hermes),
		text:  "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": [1, 2",
		calls: []Call{c(0, "f", `{"a": [1, 2`)}, err: ErrIncomplete},
	{name: "hermes/truncated-head", f: fm(Hermes),
		text: "Hi <tool_call>{\"na", content: "Hi <tool_call>{\"na"},
	{name: "hermes/partial-marker-at-end", f: fm(Hermes),
		text: "a < b <tool_c", content: "a < b <tool_c"},
	{name: "hermes/no-close", f: fm(Hermes),
		text:  "<tool_call>{\"name\": \"f\", \"arguments\": {}}",
		calls: []Call{c(0, "f", `{}`)}},
	// Qwen3-Coder XML
	{name: "qwenxml/two", f: fm(QwenXML),
		text:    "Sure.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSão Paulo\n</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=opts>\n{\"unit\": \"c\", \"x\": [1]}\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=noargs>\n</function>\n</tool_call>",
		content: "Sure.",
		calls:   []Call{c(0, "get_weather", `{"city": "São Paulo", "days": 3, "opts": {"unit": "c", "x": [1]}}`), c(1, "noargs", `{}`)}},
	{name: "qwenxml/truncated", f: fm(QwenXML),
		text:  "<tool_call>\n<function=f>\n<parameter=a>\n1\n</parameter>\n<parameter=b>\nhal",
		calls: []Call{c(0, "f", `{"a": 1`)}, err: ErrIncomplete},
	// GLM-4.5
	{name: "glm/two", f: think(fm(GLM45)),
		text:      "<think>plan</think>\nCalling.<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>北京</arg_value>\n<arg_key>n</arg_key>\n<arg_value>2</arg_value>\n</tool_call><tool_call>ping\n</tool_call>",
		reasoning: "plan", content: "Calling.",
		calls: []Call{c(0, "get_weather", `{"city": "北京", "n": 2}`), c(1, "ping", `{}`)}},
	// Llama 3.x
	{name: "llama3/bare", f: fm(Llama3),
		text:  `{"name": "get_weather", "parameters": {"city": "Paris", "nested": {"a": [true, null]}}}`,
		calls: []Call{c(0, "get_weather", `{"city": "Paris", "nested": {"a": [true, null]}}`)}},
	{name: "llama3/type-function", f: fm(Llama3),
		text:  `{"type": "function", "name": "f", "parameters": {"x": "ü"}}`,
		calls: []Call{c(0, "f", `{"x": "ü"}`)}},
	{name: "llama3/python-tag-two", f: fm(Llama3),
		text:    `Checking. <|python_tag|>{"name": "a", "parameters": {"x": 1}}; {"name": "b", "parameters": {}}`,
		content: "Checking.",
		calls:   []Call{c(0, "a", `{"x": 1}`), c(1, "b", `{}`)}},
	{name: "llama3/json-content", f: fm(Llama3),
		text: `{"answer": 42}`, content: `{"answer": 42}`},
	{name: "llama3/plain", f: fm(Llama3),
		text: "Hello there", content: "Hello there"},
	// Mistral
	{name: "mistral/array", f: fm(Mistral),
		text:  `[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Nice", "o": {"k": ["é"]}}, "id": "abc123XYZ"}, {"name": "b", "arguments": {}}]`,
		calls: []Call{{ID: "abc123XYZ", Name: "get_weather", Arguments: `{"city": "Nice", "o": {"k": ["é"]}}`}, c(1, "b", `{}`)}},
	{name: "mistral/args", f: fm(Mistral),
		text:    "Ok.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Nice\", \"n\": {\"d\": 1}}[TOOL_CALLS]b[ARGS]{}",
		content: "Ok.",
		calls:   []Call{c(0, "get_weather", `{"city": "Nice", "n": {"d": 1}}`), c(1, "b", `{}`)}},
	{name: "mistral/truncated", f: fm(Mistral),
		text:  `[TOOL_CALLS]f[ARGS]{"a": "b`,
		calls: []Call{c(0, "f", `{"a": "b`)}, err: ErrIncomplete},
	{name: "mistral/think", f: Format{Kind: Mistral, Think: "[THINK]", EndThink: "[/THINK]", NewID: seqID},
		text:      "[THINK]hmm[/THINK]Fine.",
		reasoning: "hmm", content: "Fine."},
	// DeepSeek V3 / R1
	{name: "deepseek/r1", f: think(fm(DeepSeek)),
		text:      "<think>\nNeed tools.\n</think>\n\nI'll look.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"東京\", \"d\": {\"x\": [1]}}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>b\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
		reasoning: "Need tools.", content: "I'll look.",
		calls: []Call{c(0, "get_weather", `{"city": "東京", "d": {"x": [1]}}`), c(1, "b", `{}`)}},
	{name: "deepseek/v31", f: fm(DeepSeek31),
		text:  "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>b<｜tool▁sep｜>{\"x\": {\"y\": \"z\"}}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
		calls: []Call{c(0, "get_weather", `{"city": "Paris"}`), c(1, "b", `{"x": {"y": "z"}}`)}},
	{name: "deepseek/truncated", f: fm(DeepSeek),
		text:  "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\": 1}\n``",
		calls: []Call{c(0, "f", `{"a": 1}`)}, err: ErrIncomplete},
	{name: "deepseek/garbage", f: fm(DeepSeek),
		text: "x<｜tool▁calls▁begin｜>oops", content: "x<｜tool▁calls▁begin｜>oops"},
	// Kimi-K2
	{name: "kimi/two", f: think(fm(KimiK2)),
		text:      "<think>check</think>Let me see.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"Paris\", \"o\": {\"l\": [\"ø\"]}}<|tool_call_end|><|tool_call_begin|>functions.search:1<|tool_call_argument_begin|>{\"q\": \"x\"}<|tool_call_end|><|tool_calls_section_end|>",
		reasoning: "check", content: "Let me see.",
		calls: []Call{{ID: "functions.get_weather:0", Name: "get_weather", Arguments: `{"city": "Paris", "o": {"l": ["ø"]}}`}, {ID: "functions.search:1", Name: "search", Arguments: `{"q": "x"}`}}},
	{name: "kimi/truncated", f: fm(KimiK2),
		text:  "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{\"a\": ",
		calls: []Call{{ID: "functions.f:0", Name: "f", Arguments: `{"a": `}}, err: ErrIncomplete},
	// gpt-oss harmony
	{name: "harmony/call", f: fm(Harmony),
		text:      "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\", \"o\": {\"u\": \"°C\"}}<|call|>",
		reasoning: "Need the weather.",
		calls:     []Call{c(0, "get_weather", `{"city": "Paris", "o": {"u": "°C"}}`)}},
	{name: "harmony/final", f: fm(Harmony),
		text:      "<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>It is 21°C.<|return|>",
		reasoning: "think", content: "It is 21°C."},
	{name: "harmony/recipient-first", f: fm(Harmony),
		text:  "<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{}<|call|>",
		calls: []Call{c(0, "f", `{}`)}},
	{name: "harmony/truncated", f: fm(Harmony),
		text:  "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\"",
		calls: []Call{c(0, "f", `{"a"`)}, err: ErrIncomplete},
	{name: "harmony/plain", f: fm(Harmony), text: "just text", content: "just text"},
	// bad arguments
	{name: "kimi/bad-args", f: fm(KimiK2),
		text:  "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{\"a\": tru}<|tool_call_end|><|tool_calls_section_end|>",
		calls: []Call{{ID: "functions.f:0", Name: "f", Arguments: `{"a": tru}`}}, err: ErrArguments},
	{name: "content-only", f: think(fm(Content)), text: "<think>r</think> <tool_call>x", reasoning: "r", content: "<tool_call>x"},
}

func check(t *testing.T, tc tcase, content, reasoning string, calls []Call, err error) {
	t.Helper()
	if content != tc.content {
		t.Errorf("content %q, want %q", content, tc.content)
	}
	if reasoning != tc.reasoning {
		t.Errorf("reasoning %q, want %q", reasoning, tc.reasoning)
	}
	if len(calls) == 0 && len(tc.calls) == 0 {
		calls = nil
	}
	if !reflect.DeepEqual(calls, tc.calls) {
		t.Errorf("calls %+v\nwant  %+v", calls, tc.calls)
	}
	if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
		t.Errorf("err %v, want %v", err, tc.err)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			content, reasoning, calls, err := tc.f.Parse(tc.text)
			check(t, tc, content, reasoning, calls, err)
		})
	}
}

// streamAll feeds chunks and rebuilds the result from the events.
func streamAll(f Format, chunks []string) (content, reasoning string, calls []Call, err error) {
	s := NewStream(f)
	var cb, rb strings.Builder
	apply := func(ev []Event) {
		for _, e := range ev {
			switch e.Kind {
			case ContentDelta:
				cb.WriteString(e.Text)
			case ReasoningDelta:
				rb.WriteString(e.Text)
			case ToolCallDelta:
				if e.Index == len(calls) {
					calls = append(calls, Call{ID: e.ID, Name: e.Name})
				}
				calls[e.Index].Arguments += e.Arguments
			}
		}
	}
	for _, ch := range chunks {
		apply(s.Feed(ch))
	}
	ev, err := s.Close()
	apply(ev)
	return cb.String(), rb.String(), calls, err
}

func splitBytes(s string) []string {
	out := make([]string, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = s[i : i+1]
	}
	return out
}

func TestStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			content, reasoning, calls, err := streamAll(tc.f, splitBytes(tc.text))
			check(t, tc, content, reasoning, calls, err)
			for k := 1; k < len(tc.text); k++ {
				content, reasoning, calls, err := streamAll(tc.f, []string{tc.text[:k], tc.text[k:]})
				if t.Failed() {
					return
				}
				check(t, tc, content, reasoning, calls, err)
			}
			for range 20 {
				var chunks []string
				for s := tc.text; s != ""; {
					n := min(len(s), 1+rng.IntN(12))
					chunks, s = append(chunks, s[:n]), s[n:]
				}
				content, reasoning, calls, err := streamAll(tc.f, chunks)
				check(t, tc, content, reasoning, calls, err)
			}
		})
	}
}

// The events are OpenAI's delta.tool_calls: id and name once, in the first
// event of an index, then argument fragments as they arrive; a partial
// marker is held back, not sent as content.
func TestStreamEvents(t *testing.T) {
	s := NewStream(fm(Hermes))
	var got []Event
	for _, d := range []string{"Hi <tool", "_call>\n{\"name\": \"f\", \"arguments\": {\"a\"", ": 1}}\n</tool_call>"} {
		got = append(got, s.Feed(d)...)
	}
	ev, err := s.Close()
	got = append(got, ev...)
	want := []Event{
		{Kind: ContentDelta, Text: "Hi"},
		{Kind: ToolCallDelta, Index: 0, ID: "call_0", Name: "f", Arguments: `{"a"`},
		{Kind: ToolCallDelta, Index: 0, Arguments: `: 1}`},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("events %+v, %v\nwant %+v", got, err, want)
	}
	if calls := s.Calls(); len(calls) != 1 || calls[0].Arguments != `{"a": 1}` {
		t.Errorf("Calls() = %+v", calls)
	}
}
