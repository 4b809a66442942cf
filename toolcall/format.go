package toolcall

import (
	"crypto/rand"
	"errors"
	"strings"
)

// Kind names a tool-call format.
type Kind string

// The formats, named as llama.cpp's common/chat names them where it has a
// name.
const (
	Content    Kind = "content-only" // no tool calls: the whole text is content
	Hermes     Kind = "hermes"       // <tool_call>{"name":..,"arguments":..}</tool_call> (Hermes 2 Pro, Qwen2.5, Qwen3)
	QwenXML    Kind = "qwen3-coder"  // <tool_call><function=NAME><parameter=K>V</parameter></function></tool_call> (Qwen3-Coder, Nemotron)
	GLM45      Kind = "glm-4.5"      // <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>
	Llama3     Kind = "llama3.x"     // {"name":..,"parameters":..} or <|python_tag|>{...}
	Mistral    Kind = "mistral"      // [TOOL_CALLS][{...}] or [TOOL_CALLS]NAME[ARGS]{...}
	DeepSeek   Kind = "deepseek-r1"  // <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json ... (V3, R1)
	DeepSeek31 Kind = "deepseek-v3.1"
	KimiK2     Kind = "kimi-k2" // <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>...
	Harmony    Kind = "gpt-oss" // <|channel|>commentary to=functions.NAME ...<|message|>{...}<|call|>
)

// Errors of Parse and Stream.Close; the calls are still returned.
var (
	// ErrIncomplete: the text ends inside a tool call (max_tokens, a stop string).
	ErrIncomplete = errors.New("toolcall: text ends inside a tool call")
	// ErrArguments: a call's arguments are not valid JSON.
	ErrArguments = errors.New("toolcall: arguments are not valid JSON")
)

// Call is one tool call. Arguments is JSON text (an object, as the model
// wrote it).
type Call struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Format is a family's tool-call and reasoning format. The zero value is
// Content (no parsing).
type Format struct {
	Kind Kind
	// Think and EndThink delimit reasoning ("<think>", "</think>"); empty
	// when the family has none (Harmony's analysis channel is built in).
	Think, EndThink string
	// ThinkingOpen: the prompt ended inside the reasoning (the template
	// opened <think>), so the output starts as reasoning. See WithPrompt.
	ThinkingOpen bool
	// NewID makes the id of call index i when the format has none of its
	// own (Kimi-K2's functions.NAME:IDX, Mistral's id); nil: "call_" and 24
	// random letters and digits.
	NewID func(index int) string
	// mistralArgs: the template writes NAME[ARGS]{...} (v11+), not a JSON array.
	mistralArgs bool
}

// Detect chooses the format from a chat template source
// (tokenizer.chat_template), by the markers its tool-call rendering writes,
// as llama.cpp's common_chat_templates_apply does. A template with none of
// them gives Content (plus <think> reasoning when it has that).
func Detect(template string) Format {
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(template, x) {
				return false
			}
		}
		return true
	}
	f := Format{Kind: Content}
	switch {
	case has("<|channel|>"):
		f.Kind = Harmony
	case has("<｜tool▁calls▁begin｜>"):
		f.Kind = DeepSeek
		if !has("```json") {
			f.Kind = DeepSeek31
		}
	case has("<|tool_calls_section_begin|>"):
		f.Kind = KimiK2
	case has("[TOOL_CALLS]"):
		f.Kind = Mistral
		f.mistralArgs = has("[ARGS]")
	case has("<tool_call>", "<function=", "<parameter="):
		f.Kind = QwenXML
	case has("<arg_key>"):
		f.Kind = GLM45
	case has("<tool_call>"):
		f.Kind = Hermes
	case has("<|start_header_id|>") && (has("ipython") || has("tools")):
		f.Kind = Llama3
	}
	switch {
	case f.Kind == Harmony:
	case has("[THINK]"):
		f.Think, f.EndThink = "[THINK]", "[/THINK]"
	case has("<think>") || has("</think>"):
		f.Think, f.EndThink = "<think>", "</think>"
	}
	return f
}

// WithPrompt returns f with ThinkingOpen set when the rendered prompt ends
// by opening the reasoning (DeepSeek-R1's and Qwen3's templates in
// thinking mode write "<think>\n" after the assistant header).
func (f Format) WithPrompt(prompt string) Format {
	if f.Think != "" {
		p := strings.TrimRight(prompt, " \r\n\t")
		f.ThinkingOpen = strings.HasSuffix(p, f.Think)
	}
	return f
}

func (f Format) id(i int) string {
	if f.NewID != nil {
		return f.NewID(i)
	}
	return RandomID()
}

// RandomID is an OpenAI-like call id: "call_" and 24 random letters and digits.
func RandomID() string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "call_" + string(b)
}

// Parse splits a complete output into content, reasoning and tool calls.
// The error (ErrIncomplete, ErrArguments) comes with the calls parsed.
func (f Format) Parse(text string) (content, reasoning string, calls []Call, err error) {
	r := f.run(text, true)
	for i := range r.calls {
		if r.calls[i].ID == "" {
			r.calls[i].ID = f.id(i)
		}
	}
	return r.content, r.reasoning, r.calls, r.err
}
