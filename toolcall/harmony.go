package toolcall

import (
	"fmt"
	"strings"
)

// Harmony (gpt-oss): messages <|start|>assistant<|channel|>CH[ to=R][ <|constrain|>json]<|message|>BODY<|end|>
// (or <|call|>, <|return|>); the prompt ends with <|start|>assistant, so
// the output starts at <|channel|>. analysis is reasoning, final content,
// commentary to=functions.NAME a call whose body is the arguments,
// commentary without a recipient (a preamble) content.
var harmonyEnds = []string{"<|end|>", "<|call|>", "<|return|>"}

func (f Format) harmony(text string, pos int, final bool, content, reasoning *strings.Builder, calls *[]Call) error {
	c := &cur{s: text, i: pos}
	for first := true; ; first = false {
		c.ws()
		if c.eof() {
			return nil
		}
		msg := c.i
		r := c.lit("<|start|>")
		if r == bad {
			r = c.lit("<|channel|>")
			if r == ok {
				c.i = msg
			}
		}
		if r == more {
			if final {
				content.WriteString(text[msg:])
			}
			return nil
		}
		if r == bad {
			// Not harmony (a plain or constrained output): the rest is content.
			if !first {
				content.WriteString("\n")
			}
			end := len(text)
			if !final {
				end -= holdback(text[msg:], "<|start|>", "<|channel|>")
			}
			content.WriteString(text[msg:end])
			return nil
		}
		header, r := c.until("<|message|>")
		if r != ok {
			if final {
				content.WriteString(text[msg:])
			}
			return nil
		}
		channel, recipient := harmonyHeader(header)
		body := c.i
		k, m := firstOf(text[body:], harmonyEnds)
		end := len(text)
		if k >= 0 {
			end = body + k
		} else if !final {
			end -= holdback(text[body:], harmonyEnds...)
		}
		part := text[body:end]
		switch {
		case strings.HasPrefix(recipient, "functions."):
			*calls = append(*calls, Call{Name: strings.TrimPrefix(recipient, "functions."), Arguments: part})
			if k < 0 && final {
				return fmt.Errorf("%w: call %s", ErrIncomplete, recipient)
			}
		case channel == "analysis":
			if reasoning.Len() > 0 {
				reasoning.WriteString("\n")
			}
			reasoning.WriteString(part)
		default:
			if content.Len() > 0 {
				content.WriteString("\n")
			}
			content.WriteString(part)
		}
		if k < 0 {
			return nil
		}
		c.i = body + k + len(m)
	}
}

// harmonyHeader reads the channel and the recipient (to=...) of a header
// such as "assistant to=functions.f<|channel|>commentary <|constrain|>json".
func harmonyHeader(h string) (channel, recipient string) {
	h = strings.ReplaceAll(h, "<|constrain|>", " ")
	if i := strings.Index(h, "<|channel|>"); i >= 0 {
		ch := strings.Fields(h[i+len("<|channel|>"):])
		if len(ch) > 0 {
			channel = ch[0]
		}
		h = h[:i] + " " + h[i+len("<|channel|>"):]
	}
	for _, w := range strings.Fields(h) {
		if r, ok := strings.CutPrefix(w, "to="); ok {
			recipient = r
		}
	}
	return channel, recipient
}
