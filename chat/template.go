package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// ErrTemplate is wrapped by the errors of Compile and Render: a template
// that does not parse, or one that fails (raise_exception, a type error)
// on a conversation.
var ErrTemplate = errors.New("chat: template")

// ToolCall is a function call an assistant message made (OpenAI shape).
type ToolCall struct {
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and its arguments. Arguments hold a JSON
// value; templates receive it as an object when it is one (OpenAI clients
// send a JSON string holding an object: the server decodes it first, as
// llama-server does, because templates index into it).
type FunctionCall struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

// Template renders conversations with a model's chat template: its Jinja
// source (tokenizer.chat_template) through a Jinja engine, or a built-in
// format. A Template is immutable and safe for concurrent use.
type Template struct {
	source  string
	jinja   *jinja.Template
	builtin Format
}

// Compile parses a chat template. An empty source selects chatml, as
// llama-server does for a model without a template.
func Compile(source string) (*Template, error) {
	if strings.TrimSpace(source) == "" {
		return Builtin(ChatML), nil
	}
	t, err := compileJinja(source)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	return &Template{source: source, jinja: t}, nil
}

// Builtin returns a template for a built-in format.
func Builtin(f Format) *Template { return &Template{builtin: f} }

// Source returns the Jinja source ("" for a built-in format).
func (t *Template) Source() string { return t.source }

// Name describes the template for logs: "jinja" or the built-in format.
func (t *Template) Name() string {
	if t.jinja != nil {
		return "jinja"
	}
	return string(t.builtin)
}

// RenderOptions are the template variables besides the messages.
type RenderOptions struct {
	// BOS and EOS are the texts of the model's BOS and EOS tokens
	// (bos_token, eos_token).
	BOS, EOS string
	// AddGenerationPrompt ends the prompt with the opening of the
	// assistant's turn. Built-in formats always add it.
	AddGenerationPrompt bool
	// StripBOS removes a leading BOS text from the result, for a
	// tokenizer that adds BOS itself (llama-server does the same).
	StripBOS bool
	// Tools is the list of tool definitions (OpenAI shape), nil for none.
	Tools json.RawMessage
	// Vars are extra template variables (e.g. enable_thinking); values
	// are anything encoding/json can marshal.
	Vars map[string]any
	// Now is the clock of strftime_now (nil: time.Now).
	Now func() time.Time
}

// Render renders msgs.
func (t *Template) Render(msgs []Message, o RenderOptions) (string, error) {
	if t.jinja == nil {
		return Apply(t.builtin, msgs)
	}
	vars := map[string]any{}
	for k, v := range o.Vars {
		vars[k] = v
	}
	vars["messages"] = messagesJSON(msgs)
	vars["add_generation_prompt"] = o.AddGenerationPrompt
	vars["bos_token"] = o.BOS
	vars["eos_token"] = o.EOS
	if len(o.Tools) > 0 && string(o.Tools) != "null" {
		vars["tools"] = o.Tools
	}
	s, err := t.Execute(vars, o.Now)
	if err != nil {
		return "", err
	}
	if o.StripBOS && o.BOS != "" {
		s = strings.TrimPrefix(s, o.BOS)
	}
	return s, nil
}

// Execute renders the Jinja template with vars (values: anything
// encoding/json marshals, json.RawMessage included; map keys keep the
// order they have in the JSON, which tojson output depends on) and the
// globals HF transformers gives templates: raise_exception and
// strftime_now (on clock now, nil for time.Now). A built-in template
// reports an error.
func (t *Template) Execute(vars map[string]any, now func() time.Time) (string, error) {
	if t.jinja == nil {
		return "", fmt.Errorf("%w: %s is a built-in format, not a Jinja template", ErrTemplate, t.builtin)
	}
	vals := make(map[string]jinja.Value, len(vars)+1)
	for k, v := range vars {
		jv, err := toValue(v)
		if err != nil {
			return "", fmt.Errorf("%w: variable %s: %v", ErrTemplate, k, err)
		}
		vals[k] = jv
	}
	if now == nil {
		now = time.Now
	}
	vals["strftime_now"] = jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
		format := "%Y-%m-%d"
		if len(args) > 0 && args[0].IsString() {
			format = args[0].AsString()
		}
		return jinja.NewString(Strftime(now(), format)), nil
	})
	s, err := renderJinja(t.jinja, vals)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	return s, nil
}

// compileJinja and renderJinja turn a panic of the engine on odd input
// into an error.
func compileJinja(src string) (t *jinja.Template, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("engine panic: %v", p)
		}
	}()
	return jinja.Compile(src)
}

func renderJinja(t *jinja.Template, vals map[string]jinja.Value) (s string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("engine panic: %v", p)
		}
	}()
	return t.RenderValues(vals)
}

// messagesJSON gives the messages the fields OpenAI clients send: content
// is null for an assistant turn that only calls tools; absent optional
// fields stay undefined for the template.
func messagesJSON(msgs []Message) []any {
	out := make([]any, len(msgs))
	for i, m := range msgs {
		var b bytes.Buffer
		b.WriteString(`{"role":`)
		writeJSON(&b, m.Role)
		b.WriteString(`,"content":`)
		if m.Content == "" && len(m.ToolCalls) > 0 {
			b.WriteString("null")
		} else {
			writeJSON(&b, m.Content)
		}
		if m.ReasoningContent != "" {
			b.WriteString(`,"reasoning_content":`)
			writeJSON(&b, m.ReasoningContent)
		}
		if m.Name != "" {
			b.WriteString(`,"name":`)
			writeJSON(&b, m.Name)
		}
		if m.ToolCallID != "" {
			b.WriteString(`,"tool_call_id":`)
			writeJSON(&b, m.ToolCallID)
		}
		if len(m.ToolCalls) > 0 {
			b.WriteString(`,"tool_calls":`)
			writeJSON(&b, m.ToolCalls)
		}
		b.WriteByte('}')
		out[i] = json.RawMessage(b.Bytes())
	}
	return out
}

func writeJSON(b *bytes.Buffer, v any) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // strings, messages: cannot fail
	b.Truncate(b.Len() - 1)
}

// toValue converts v to a Jinja value through JSON, keeping object keys
// in order.
func toValue(v any) (jinja.Value, error) {
	var raw []byte
	switch x := v.(type) {
	case jinja.Value:
		return x, nil
	case json.RawMessage:
		raw = x
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			return jinja.Value{}, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return decodeValue(dec, 0)
}

// maxDepth bounds the nesting of request JSON handed to templates.
const maxDepth = 64

func decodeValue(dec *json.Decoder, depth int) (jinja.Value, error) {
	if depth > maxDepth {
		return jinja.Value{}, fmt.Errorf("JSON nested deeper than %d", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return jinja.Value{}, err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '[':
			items := []jinja.Value{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return v, err
				}
				items = append(items, v)
			}
			_, err := dec.Token()
			return jinja.NewList(items), err
		case '{':
			d := jinja.NewDict()
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return d, err
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return v, err
				}
				d.AsDict().Set(k.(string), v)
			}
			_, err := dec.Token()
			return d, err
		}
		return jinja.Value{}, fmt.Errorf("unexpected %v", x)
	case json.Number:
		return jinja.FromGoValue(x), nil
	}
	return jinja.FromGoValue(tok), nil // nil, bool, string
}

// Strftime formats t with Python's strftime directives (the subset chat
// templates use: %Y %y %m %d %e %H %I %M %S %p %b %B %a %A %j %Z %z %%).
func Strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 == len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			fmt.Fprintf(&b, "%02d", (t.Hour()+11)%12+1)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'p':
			b.WriteString(t.Format("PM"))
		case 'b':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
