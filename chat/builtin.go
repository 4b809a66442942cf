// Package chat turns a conversation into the prompt text a model was
// trained on. A model's own template (tokenizer.chat_template) runs
// through a Jinja engine (Compile, Template.Render) with the globals HF
// transformers gives templates; built-in formats (chatml, Llama 2,
// Llama 3) serve models without one and callers that want no engine.
// It does not tokenize: callers encode the result with special tokens
// parsed.
package chat

import (
	"fmt"
	"strings"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"` // system, user, assistant, tool
	Content string `json:"content"`

	// Optional fields, for templates that use them; the built-in formats
	// ignore them.
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	Name             string     `json:"name,omitempty"`
	ToolCallID       string     `json:"tool_call_id,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// Format is a built-in chat format.
type Format string

// Built-in formats.
const (
	ChatML Format = "chatml"
	Llama2 Format = "llama2"
	Llama3 Format = "llama3"
)

// Detect picks the built-in format a template string corresponds to,
// falling back to chatml as llama-server does for a model without one.
func Detect(template string) Format {
	switch {
	case strings.Contains(template, "<|start_header_id|>"):
		return Llama3
	case strings.Contains(template, "[INST]"):
		return Llama2
	}
	return ChatML
}

// Apply renders msgs in format f, ending with the opening of the
// assistant's turn (the generation prompt). BOS is not included: the
// tokenizer adds it when the model asks for it.
func Apply(f Format, msgs []Message) (string, error) {
	var b strings.Builder
	switch f {
	case ChatML:
		for _, m := range msgs {
			fmt.Fprintf(&b, "<|im_start|>%s\n%s<|im_end|>\n", m.Role, m.Content)
		}
		b.WriteString("<|im_start|>assistant\n")
	case Llama3:
		for _, m := range msgs {
			fmt.Fprintf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", m.Role, strings.TrimSpace(m.Content))
		}
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	case Llama2:
		// [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s><s>[INST] ...
		system := ""
		first := true
		for _, m := range msgs {
			switch m.Role {
			case "system":
				system = m.Content
			case "user":
				if !first {
					b.WriteString("<s>")
				}
				b.WriteString("[INST] ")
				if system != "" {
					fmt.Fprintf(&b, "<<SYS>>\n%s\n<</SYS>>\n\n", system)
					system = ""
				}
				fmt.Fprintf(&b, "%s [/INST]", strings.TrimSpace(m.Content))
				first = false
			case "assistant":
				fmt.Fprintf(&b, " %s </s>", strings.TrimSpace(m.Content))
			default:
				return "", fmt.Errorf("chat: llama2 format has no role %q", m.Role)
			}
		}
	default:
		return "", fmt.Errorf("chat: unknown format %q (built in: chatml, llama2, llama3)", f)
	}
	return b.String(), nil
}
