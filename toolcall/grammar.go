package toolcall

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/inference-x/inference-x/grammar"
)

// Tool is a function the model may call: its name and the JSON Schema of
// its arguments (nil: any object).
type Tool struct {
	Name       string
	Parameters json.RawMessage
}

// GrammarOptions tune Format.Grammar.
type GrammarOptions struct {
	// Parallel allows several calls (parallel_tool_calls); otherwise one.
	Parallel bool
	// Token writes the GBNF of a control-token marker. nil: markers
	// spelled <...> become token references by text (grammar.ParseForVocab
	// resolves them), others ([TOOL_CALLS]) literal text. A server passes
	// the token id: func(m string) string { id, _ := tok.TokenID(m); return fmt.Sprintf("<[%d]>", id) }.
	Token func(marker string) string
}

// ErrNoGrammar: the format has no call grammar (Content, QwenXML, GLM45:
// their arguments are not JSON).
var ErrNoGrammar = errors.New("toolcall: no tool-call grammar for this format")

// Grammar returns a GBNF grammar (start rule root) whose every sentence is
// a tool call in f of one of tools, arguments valid against its schema (as
// grammar.SchemaBuilder compiles it: compact JSON). It serves tool_choice
// "required" (all tools) and a named function (tools of one). The text
// Parse reads back; it starts at the call (no reasoning, no content
// before). Formats: Hermes, Llama3, Mistral (both spellings), DeepSeek,
// DeepSeek31, KimiK2, Harmony.
func (f Format) Grammar(tools []Tool, opt GrammarOptions) (string, error) {
	if len(tools) == 0 {
		return "", errors.New("toolcall: grammar of no tools")
	}
	tok := opt.Token
	if tok == nil {
		tok = func(m string) string {
			if strings.HasPrefix(m, "<") && strings.HasSuffix(m, ">") {
				return m
			}
			return gbnfLit(m)
		}
	}
	b := grammar.NewSchemaBuilder()
	var alts []string
	for i, t := range tools {
		if t.Name == "" {
			return "", fmt.Errorf("toolcall: tool %d has no name", i)
		}
		schema := t.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		args, err := b.Add(fmt.Sprintf("args%d", i), schema)
		if err != nil {
			return "", fmt.Errorf("toolcall: tool %q: %w", t.Name, err)
		}
		nameJSON, _ := json.Marshal(t.Name)
		n := string(nameJSON)
		var alt string
		switch f.Kind {
		case Hermes:
			alt = gbnfLit(`<tool_call>`+"\n"+`{"name": `+n+`, "arguments": `) + " " + args + " " + gbnfLit("}\n</tool_call>")
		case Llama3:
			alt = gbnfLit(`{"name": `+n+`, "parameters": `) + " " + args + ` "}"`
		case Mistral:
			if f.mistralArgs {
				alt = tok("[TOOL_CALLS]") + " " + gbnfLit(t.Name) + " " + tok("[ARGS]") + " " + args
			} else {
				alt = gbnfLit(`{"name": `+n+`, "arguments": `) + " " + args + ` "}"`
			}
		case DeepSeek:
			alt = tok("<｜tool▁call▁begin｜>") + ` "function" ` + tok("<｜tool▁sep｜>") + " " + gbnfLit(t.Name+"\n```json\n") + " " + args + " " + gbnfLit("\n```") + " " + tok("<｜tool▁call▁end｜>")
		case DeepSeek31:
			alt = tok("<｜tool▁call▁begin｜>") + " " + gbnfLit(t.Name) + " " + tok("<｜tool▁sep｜>") + " " + args + " " + tok("<｜tool▁call▁end｜>")
		case KimiK2:
			alt = tok("<|tool_call_begin|>") + " " + gbnfLit("functions."+t.Name+":") + " [0-9]{1,3} " + tok("<|tool_call_argument_begin|>") + " " + args + " " + tok("<|tool_call_end|>")
		case Harmony:
			alt = tok("<|channel|>") + " " + gbnfLit("commentary to=functions."+t.Name+" ") + " " + tok("<|constrain|>") + ` "json" ` + tok("<|message|>") + " " + args + " " + tok("<|call|>")
		default:
			return "", fmt.Errorf("%w: %s", ErrNoGrammar, f.Kind)
		}
		alts = append(alts, alt)
	}
	call := b.Rule("tool-call", strings.Join(alts, " | "))
	calls := call
	if opt.Parallel && f.Kind != Harmony {
		sep := map[Kind]string{Hermes: `"\n" `, Llama3: `"; " `, Mistral: `", " `}[f.Kind]
		if f.Kind == Mistral && f.mistralArgs {
			sep = ""
		}
		calls = call + " ( " + sep + call + " )*"
	}
	var root string
	switch {
	case f.Kind == Mistral && !f.mistralArgs:
		root = tok("[TOOL_CALLS]") + ` "[" ` + calls + ` "]"`
	case f.Kind == DeepSeek || f.Kind == DeepSeek31:
		root = tok("<｜tool▁calls▁begin｜>") + " " + calls + " " + tok("<｜tool▁calls▁end｜>")
	case f.Kind == KimiK2:
		root = tok("<|tool_calls_section_begin|>") + " " + calls + " " + tok("<|tool_calls_section_end|>")
	default:
		root = calls
	}
	b.Rule("root", root)
	return b.GBNF(), nil
}

// gbnfLit writes s as a GBNF string literal.
func gbnfLit(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\x%02X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
