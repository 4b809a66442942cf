package toolcall

import (
	"encoding/json"
	"fmt"
	"strings"
)

// result is a parse of a text that may still grow (final false): every
// field is then a prefix of what the longer text gives, which is what lets
// Stream send differences.
type result struct {
	content, reasoning string
	calls              []Call // ID empty unless the format has its own
	err                error
}

// block is the outcome of a format's parser at a marker: the calls it read
// (the last unfinished when open), where it stopped, and whether it matched.
type block struct {
	calls []Call
	open  bool
	end   int
	st    st
}

// stop ends a block of several calls on r: a malformed call after good
// ones ends the block at the last good one (ok), anything else is r.
func (b block) stop(r st) block {
	b.st = r
	if r == bad && len(b.calls) > 0 {
		b.st = ok
	}
	return b
}

// run parses text; final says the text is complete.
func (f Format) run(text string, final bool) result {
	var content, reasoning strings.Builder
	pos := 0
	if f.Think != "" {
		c := cur{s: text}
		c.ws()
		inThink := f.ThinkingOpen
		switch c.lit(f.Think) {
		case ok:
			inThink, pos = true, c.i
		case more:
			if !final && !c.eof() {
				return result{}
			}
		}
		if inThink {
			if pos == 0 {
				pos = c.i // skip leading spaces
			}
			k := strings.Index(text[pos:], f.EndThink)
			if k < 0 {
				end := len(text)
				if !final {
					end -= holdback(text[pos:], f.EndThink)
				}
				reasoning.WriteString(text[pos:end])
				return finish(content.String(), reasoning.String(), nil, nil, final)
			}
			reasoning.WriteString(text[pos : pos+k])
			pos += k + len(f.EndThink)
		}
	}
	var calls []Call
	var err error
	if f.Kind == Harmony {
		err = f.harmony(text, pos, final, &content, &reasoning, &calls)
	} else {
		err = f.body(text, pos, final, &content, &calls)
	}
	return finish(content.String(), reasoning.String(), calls, err, final)
}

// finish trims spaces around content and reasoning; a partial result holds
// trailing spaces back, since the final one drops them when nothing follows.
func finish(content, reasoning string, calls []Call, err error, final bool) result {
	trim := func(s string) string {
		s = strings.TrimLeft(s, " \r\n\t")
		return strings.TrimRight(s, " \r\n\t")
	}
	if err == nil && final {
		var bad []string
		for _, c := range calls {
			if !json.Valid([]byte(c.Arguments)) {
				bad = append(bad, c.Name)
			}
		}
		if len(bad) > 0 {
			err = fmt.Errorf("%w: call %s", ErrArguments, strings.Join(bad, ", "))
		}
	}
	return result{content: trim(content), reasoning: trim(reasoning), calls: calls, err: err}
}

// markers are the texts that start a tool call in f.
func (f Format) markers() []string {
	switch f.Kind {
	case Hermes, QwenXML, GLM45:
		return []string{"<tool_call>"}
	case Llama3:
		return []string{"<|python_tag|>"}
	case Mistral:
		return []string{"[TOOL_CALLS]"}
	case DeepSeek, DeepSeek31:
		return []string{"<｜tool▁calls▁begin｜>"}
	case KimiK2:
		return []string{"<|tool_calls_section_begin|>", "<|tool_call_section_begin|>"}
	}
	return nil
}

// body reads content and tool-call blocks from text[pos:].
func (f Format) body(text string, pos int, final bool, content *strings.Builder, calls *[]Call) error {
	markers := f.markers()
	if f.Kind == Llama3 {
		// A bare JSON call at the start of the answer.
		c := cur{s: text, i: pos}
		c.ws()
		if !c.eof() && c.s[c.i] == '{' {
			b := f.llama3Calls(text, c.i)
			if r, stop, err := f.takeBlock(b, text, pos, c.i, final, content, calls); stop {
				return err
			} else if b.st != bad {
				pos = r
			}
		} else if c.eof() && !final {
			return nil
		}
	}
	for {
		k, m := firstOf(text[pos:], markers)
		if k < 0 {
			end := len(text)
			if !final {
				end -= holdback(text[pos:], markers...)
			}
			content.WriteString(text[pos:end])
			return nil
		}
		content.WriteString(text[pos : pos+k])
		start := pos + k
		b := f.parseBlock(text, start, m)
		if b.st == bad {
			content.WriteString(m)
			pos = start + len(m)
			continue
		}
		r, stop, err := f.takeBlock(b, text, pos, start, final, content, calls)
		if stop {
			return err
		}
		pos = r
	}
}

// takeBlock applies b (starting at start) and says where to go on, or to stop.
func (f Format) takeBlock(b block, text string, pos, start int, final bool, content *strings.Builder, calls *[]Call) (int, bool, error) {
	switch b.st {
	case ok:
		*calls = append(*calls, b.calls...)
		return b.end, false, nil
	case more:
		if !final {
			*calls = append(*calls, b.calls...)
			return 0, true, nil
		}
		if len(b.calls) == 0 {
			content.WriteString(text[start:])
			return 0, true, nil
		}
		*calls = append(*calls, b.calls...)
		if b.open {
			return 0, true, fmt.Errorf("%w: call %s", ErrIncomplete, b.calls[len(b.calls)-1].Name)
		}
		return b.end, false, nil
	}
	return pos, false, nil
}

func (f Format) parseBlock(text string, i int, m string) block {
	c := &cur{s: text, i: i + len(m)}
	switch f.Kind {
	case Hermes:
		return hermes(c)
	case QwenXML:
		return qwenXML(c)
	case GLM45:
		return glm(c)
	case Llama3:
		return f.llama3Calls(text, c.i)
	case Mistral:
		return mistral(c)
	case DeepSeek, DeepSeek31:
		return keepCalls(deepseek(c))
	case KimiK2:
		return keepCalls(kimi(c))
	}
	return block{st: bad}
}

// keepCalls: a section that goes wrong after complete calls keeps them
// (b.end is after the last), the rest is content.
func keepCalls(b block) block {
	if b.st == bad && len(b.calls) > 0 {
		b.st = ok
	}
	return b
}

// jsonCall reads {"name": NAME, "arguments": ARGS} (argKeys name the
// arguments' key), streaming ARGS; other key orders are read whole.
func jsonCall(c *cur, argKeys ...string) block {
	start := c.i
	b, r := jsonCallHead(c, argKeys)
	if r == bad {
		c.i = start
		return jsonCallWhole(c, argKeys)
	}
	return b
}

func jsonCallHead(c *cur, argKeys []string) (block, st) {
	if r := c.lit("{"); r != ok {
		return block{st: r}, r
	}
	c.ws()
	if r := c.lit(`"name"`); r != ok {
		return block{st: r}, r
	}
	c.ws()
	if r := c.lit(":"); r != ok {
		return block{st: r}, r
	}
	c.ws()
	if c.eof() {
		return block{st: more}, more
	}
	if c.s[c.i] != '"' {
		return block{}, bad
	}
	e, r := scanString(c.s, c.i)
	if r != ok {
		return block{st: r}, r
	}
	var name string
	if json.Unmarshal([]byte(c.s[c.i:e]), &name) != nil {
		return block{}, bad
	}
	c.i = e
	c.ws()
	if r := c.lit(","); r != ok {
		return block{st: r}, r
	}
	c.ws()
	matched := bad
	for _, k := range argKeys {
		save := c.i
		r := c.lit(`"` + k + `"`)
		if r == ok {
			matched = ok
			break
		}
		if r == more {
			matched = more
		}
		c.i = save
	}
	if matched != ok {
		return block{st: matched}, matched
	}
	c.ws()
	if r := c.lit(":"); r != ok {
		return block{st: r}, r
	}
	c.ws()
	call, r := args(c, Call{Name: name})
	switch {
	case r == bad:
		return block{}, bad
	case r == more && c.eof() && call.Arguments == "":
		return block{st: more}, more
	case r == more:
		return block{calls: []Call{call}, open: true, st: more}, more
	}
	e = c.i
	c.ws()
	switch c.lit("}") {
	case more:
		return block{calls: []Call{call}, open: true, st: more}, more
	case bad:
		return block{calls: []Call{call}, end: e, st: ok}, ok
	}
	return block{calls: []Call{call}, end: c.i, st: ok}, ok
}

func jsonCallWhole(c *cur, argKeys []string) block {
	e, r := scanJSON(c.s, c.i)
	if r != ok {
		return block{st: r}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal([]byte(c.s[c.i:e]), &obj) != nil {
		return block{st: bad}
	}
	var call Call
	if json.Unmarshal(obj["name"], &call.Name) != nil || call.Name == "" {
		return block{st: bad}
	}
	_ = json.Unmarshal(obj["id"], &call.ID)
	call.Arguments = "{}"
	for _, k := range argKeys {
		if a, okk := obj[k]; okk {
			call.Arguments = string(a)
			break
		}
	}
	c.i = e
	return block{calls: []Call{call}, end: e, st: ok}
}

// args reads a call's JSON arguments at c. Once the first byte is there
// the call exists (a stream has announced it): broken JSON ends it where
// it breaks (ErrArguments later), it is never taken back.
func args(c *cur, call Call) (Call, st) {
	if c.eof() {
		return call, more
	}
	a := c.i
	e, r := scanJSON(c.s, a)
	if r == bad && e == a {
		return call, bad
	}
	call.Arguments = c.s[a:e]
	if r == more {
		return call, more
	}
	c.i = e
	return call, ok
}

// close consumes spaces and the closing marker m after complete calls.
func closeWith(c *cur, b block, m string) block {
	b.end = c.i
	c.ws()
	switch c.lit(m) {
	case ok:
		b.end, b.st = c.i, ok
	case more:
		b.st = more
	default:
		b.st = ok // tolerate a missing closing marker; the rest is content
	}
	return b
}

func hermes(c *cur) block {
	c.ws()
	b := jsonCall(c, "arguments", "parameters")
	if b.st != ok {
		return b
	}
	return closeWith(c, b, "</tool_call>")
}

// llama3Calls reads JSON calls separated by ";" (or spaces).
func (f Format) llama3Calls(text string, i int) block {
	c := &cur{s: text, i: i}
	var out block
	for {
		c.ws()
		b := jsonCall(c, "parameters", "arguments")
		if b.st == bad && len(out.calls) > 0 {
			out.st = ok
			return out
		}
		out.calls = append(out.calls, b.calls...)
		if b.st != ok {
			out.open, out.st = b.open, b.st
			return out
		}
		out.end = c.i
		c.ws()
		if c.lit(";") != ok {
			c.i = out.end
			if c.eof() {
				out.st = more // another call may follow
				return out
			}
			out.st = ok
			return out
		}
	}
}

func mistral(c *cur) block {
	c.ws()
	if c.eof() {
		return block{st: more}
	}
	if c.s[c.i] == '[' || c.s[c.i] == '{' {
		e, r := scanJSON(c.s, c.i)
		if r != ok {
			return block{st: r}
		}
		raw := c.s[c.i:e]
		var list []json.RawMessage
		if raw[0] == '{' {
			list = []json.RawMessage{json.RawMessage(raw)}
		} else if json.Unmarshal([]byte(raw), &list) != nil {
			return block{st: bad}
		}
		var out block
		for _, item := range list {
			ic := &cur{s: string(item)}
			b := jsonCallWhole(ic, []string{"arguments", "parameters"})
			if b.st != ok {
				return block{st: bad}
			}
			out.calls = append(out.calls, b.calls...)
		}
		out.end, out.st = e, ok
		return out
	}
	// NAME[ARGS]{...}, NAME[CALL_ID]id[ARGS]{...}
	rest := c.rest()
	k := 0
	for k < len(rest) && (rest[k] == '_' || rest[k] == '-' || rest[k] == '.' || rest[k] >= '0' && rest[k] <= '9' || rest[k]|0x20 >= 'a' && rest[k]|0x20 <= 'z') {
		k++
	}
	if k == len(rest) {
		return block{st: more}
	}
	name := rest[:k]
	m := ""
	for _, mk := range []string{"[ARGS]", "[CALL_ID]"} {
		if strings.HasPrefix(rest[k:], mk) {
			m = mk
		} else if strings.HasPrefix(mk, rest[k:]) {
			return block{st: more}
		}
	}
	if name == "" || m == "" {
		return block{st: bad}
	}
	c.i += k + len(m)
	id := ""
	if m == "[CALL_ID]" {
		var r st
		if id, r = c.until("[ARGS]"); r != ok {
			return block{st: r}
		}
	}
	call, r := args(c, Call{ID: id, Name: name})
	switch {
	case r == bad:
		return block{st: bad}
	case r == more && call.Arguments == "":
		return block{st: more}
	case r == more:
		return block{calls: []Call{call}, open: true, st: more}
	}
	return block{calls: []Call{call}, end: c.i, st: ok}
}

func kimi(c *cur) block {
	var out block
	for {
		c.ws()
		out.end = c.i
		switch c.lit("<|tool_call_begin|>") {
		case more:
			out.st = more
			return out
		case bad:
			if len(out.calls) == 0 {
				out.st = bad
				return out
			}
			return closeWith(c, out, "<|tool_calls_section_end|>")
		}
		id, r := c.field("<|tool_call_argument_begin|>", "\n{")
		if r != ok {
			return out.stop(r)
		}
		id = strings.TrimSpace(id)
		name := strings.TrimPrefix(id, "functions.")
		if j := strings.LastIndexByte(name, ':'); j >= 0 {
			name = name[:j]
		}
		c.ws()
		call, r := args(c, Call{ID: id, Name: name})
		switch {
		case r == bad || r == more && call.Arguments == "":
			return out.stop(r)
		}
		out.calls = append(out.calls, call)
		if r == more {
			out.open, out.st = true, more
			return out
		}
		e := c.i
		c.ws()
		switch c.lit("<|tool_call_end|>") {
		case more:
			out.open, out.st = true, more
			return out
		case bad:
			out.end, out.st = e, ok
			return out
		}
	}
}

func deepseek(c *cur) block {
	var out block
	for {
		c.ws()
		out.end = c.i
		switch c.lit("<｜tool▁call▁begin｜>") {
		case more:
			out.st = more
			return out
		case bad:
			if len(out.calls) == 0 {
				out.st = bad
				return out
			}
			return closeWith(c, out, "<｜tool▁calls▁end｜>")
		}
		head, r := c.field("<｜tool▁sep｜>", "\n{")
		if r != ok {
			return out.stop(r)
		}
		var name string
		fenced := false
		if strings.TrimSpace(head) == "function" && !strings.HasPrefix(strings.TrimLeft(c.rest(), " \n"), "{") {
			// V3/R1: NAME\n```json\n{...}\n```
			if name, r = c.field("\n", "`{<"); r != ok {
				return out.stop(r)
			}
			name = strings.TrimSpace(name)
			c.ws()
			if r := c.lit("```json"); r != ok {
				out.st = r
				return out
			}
			fenced = true
		} else {
			name = strings.TrimSpace(head)
		}
		if name == "" {
			out.st = bad
			return out
		}
		c.ws()
		call, r := args(c, Call{Name: name})
		switch {
		case r == bad || r == more && call.Arguments == "":
			return out.stop(r)
		}
		out.calls = append(out.calls, call)
		if r == more {
			out.open, out.st = true, more
			return out
		}
		e := c.i
		c.ws()
		if fenced {
			switch c.lit("```") {
			case more:
				out.open, out.st = true, more
				return out
			case ok:
				c.ws()
			}
		}
		switch c.lit("<｜tool▁call▁end｜>") {
		case more:
			out.open, out.st = true, more
			return out
		case bad:
			out.end, out.st = e, ok
			return out
		}
	}
}

// xmlArgs accumulates arguments as a JSON object written a pair at a time
// (so a growing text gives growing arguments): values that parse as JSON
// (numbers, objects, true) stay JSON, others become strings.
type xmlArgs struct{ b strings.Builder }

func (x *xmlArgs) add(k, v string) {
	if x.b.Len() == 0 {
		x.b.WriteString("{")
	} else {
		x.b.WriteString(", ")
	}
	kj, _ := json.Marshal(k)
	x.b.Write(kj)
	x.b.WriteString(": ")
	v = strings.TrimPrefix(v, "\n")
	v = strings.TrimSuffix(v, "\n")
	t := strings.TrimSpace(v)
	if t != "" && json.Valid([]byte(t)) && !strings.HasPrefix(t, `"`) {
		x.b.WriteString(t)
		return
	}
	vj, _ := json.Marshal(v)
	x.b.Write(vj)
}

func (x *xmlArgs) done() string {
	if x.b.Len() == 0 {
		return "{}"
	}
	return x.b.String() + "}"
}

func qwenXML(c *cur) block {
	c.ws()
	if r := c.lit("<function="); r != ok {
		return block{st: r}
	}
	name, r := c.field(">", "\n<")
	if r != ok {
		return block{st: r}
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return block{st: bad}
	}
	var args xmlArgs
	partial := func() block {
		return block{calls: []Call{{Name: name, Arguments: args.b.String()}}, open: true, st: more}
	}
	for {
		c.ws()
		if c.eof() {
			return partial()
		}
		switch c.lit("<parameter=") {
		case more:
			return partial()
		case ok:
			key, r := c.until(">")
			if r != ok {
				return partial()
			}
			val, r := c.until("</parameter>")
			if r != ok {
				return partial()
			}
			args.add(strings.TrimSpace(key), val)
			continue
		}
		switch c.lit("</function>") {
		case more:
			return partial()
		case bad:
			// Unexpected text: end the call here.
			return block{calls: []Call{{Name: name, Arguments: args.done()}}, end: c.i, st: ok}
		}
		return closeWith(c, block{calls: []Call{{Name: name, Arguments: args.done()}}}, "</tool_call>")
	}
}

func glm(c *cur) block {
	c.ws()
	rest := c.rest()
	k := strings.IndexAny(rest, "\n<")
	if k < 0 {
		if strings.ContainsAny(rest, "{\"") {
			return block{st: bad}
		}
		return block{st: more}
	}
	if rest[k] == '<' && !strings.HasPrefix(rest[k:], "<arg_key>") && !strings.HasPrefix(rest[k:], "</tool_call>") {
		if strings.HasPrefix("<arg_key>", rest[k:]) || strings.HasPrefix("</tool_call>", rest[k:]) {
			return block{st: more}
		}
		return block{st: bad}
	}
	name := strings.TrimSpace(rest[:k])
	if name == "" || strings.ContainsAny(name, "{<\" ") {
		return block{st: bad}
	}
	c.i += k
	var args xmlArgs
	partial := func() block {
		return block{calls: []Call{{Name: name, Arguments: args.b.String()}}, open: true, st: more}
	}
	for {
		c.ws()
		if c.eof() {
			return partial()
		}
		switch c.lit("<arg_key>") {
		case more:
			return partial()
		case ok:
			key, r := c.until("</arg_key>")
			if r != ok {
				return partial()
			}
			c.ws()
			if r := c.lit("<arg_value>"); r != ok {
				if r == more {
					return partial()
				}
				return block{calls: []Call{{Name: name, Arguments: args.done()}}, end: c.i, st: ok}
			}
			val, r := c.until("</arg_value>")
			if r != ok {
				return partial()
			}
			args.add(strings.TrimSpace(key), val)
			continue
		}
		switch c.lit("</tool_call>") {
		case more:
			return partial()
		case bad:
			return block{calls: []Call{{Name: name, Arguments: args.done()}}, end: c.i, st: ok}
		}
		return block{calls: []Call{{Name: name, Arguments: args.done()}}, end: c.i, st: ok}
	}
}
