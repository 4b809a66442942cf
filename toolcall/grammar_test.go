package toolcall

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/grammar"
)

// A test vocabulary: ids 0-255 are the bytes, then one id per control
// marker, then the end-of-generation token.
var controls = []string{
	"[TOOL_CALLS]", "[ARGS]",
	"<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>", "<｜tool▁sep｜>",
	"<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>",
	"<|channel|>", "<|constrain|>", "<|message|>", "<|call|>",
}

func testVocab(t *testing.T) (*grammar.Vocab, func(string) string) {
	pieces := make([][]byte, 256+len(controls)+1)
	for i := range 256 {
		pieces[i] = []byte{byte(i)}
	}
	eog := int32(len(pieces) - 1)
	v, err := grammar.NewVocab(pieces, []int32{eog})
	if err != nil {
		t.Fatal(err)
	}
	return v, func(m string) string {
		for i, c := range controls {
			if c == m {
				return fmt.Sprintf("<[%d]>", 256+i)
			}
		}
		t.Fatalf("no control token %q", m)
		return ""
	}
}

// feed runs text through m, control markers as their tokens.
func feed(m *grammar.Matcher, text string) error {
	for text != "" {
		hit := false
		for i, c := range controls {
			if strings.HasPrefix(text, c) {
				if err := m.AcceptToken(int32(256 + i)); err != nil {
					return err
				}
				text, hit = text[len(c):], true
				break
			}
		}
		if !hit {
			if err := m.Accept([]byte{text[0]}); err != nil {
				return err
			}
			text = text[1:]
		}
	}
	return nil
}

var weatherTools = []Tool{
	{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]},"where":{"type":"object","properties":{"lat":{"type":"number"}},"required":["lat"]}},"required":["city"]}`)},
	{Name: "ping"},
}

func TestGrammar(t *testing.T) {
	v, tok := testVocab(t)
	mistralArgs := fm(Mistral)
	mistralArgs.mistralArgs = true
	for _, tc := range []struct {
		f        Format
		parallel bool
		valid    []string
		invalid  []string
	}{
		{f: fm(Hermes), parallel: true,
			valid: []string{
				"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris é\", \"where\": {\"lat\": 48.8}}}\n</tool_call>",
				"<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"東京\", \"unit\": \"c\"}}\n</tool_call>",
			},
			invalid: []string{
				"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"c\"}}\n</tool_call>", // city required
				"<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>",
				"Sure! <tool_call>",
			}},
		{f: fm(Llama3),
			valid:   []string{`{"name": "get_weather", "parameters": {"city": "Paris", "unit": "f"}}`},
			invalid: []string{`{"name": "get_weather", "parameters": {"city": "Paris", "unit": "k"}}`, `{"name": "get_weather", "parameters": {"city": "a"}}; {"name": "ping", "parameters": {}}`}},
		{f: fm(Mistral), parallel: true,
			valid:   []string{`[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Nice"}}, {"name": "ping", "arguments": {}}]`},
			invalid: []string{`[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": 3}}]`}},
		{f: mistralArgs,
			valid:   []string{`[TOOL_CALLS]get_weather[ARGS]{"city": "Nice"}`},
			invalid: []string{`[TOOL_CALLS]get_weather[ARGS]{"city": "Nice"}[TOOL_CALLS]ping[ARGS]{}`}},
		{f: fm(DeepSeek), parallel: true,
			valid:   []string{"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>ping\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
			invalid: []string{"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁calls▁end｜>"}},
		{f: fm(DeepSeek31),
			valid:   []string{"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
			invalid: []string{"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"}},
		{f: fm(KimiK2), parallel: true,
			valid:   []string{"<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_call_end|><|tool_call_begin|>functions.ping:1<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>"},
			invalid: []string{"<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_calls_section_end|>"}},
		{f: fm(Harmony),
			valid:   []string{"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>"},
			invalid: []string{"<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"town\": \"Paris\"}<|call|>"}},
	} {
		t.Run(string(tc.f.Kind), func(t *testing.T) {
			src, err := tc.f.Grammar(weatherTools, GrammarOptions{Parallel: tc.parallel, Token: tok})
			if err != nil {
				t.Fatal(err)
			}
			g, err := grammar.ParseForVocab(src, v)
			if err != nil {
				t.Fatalf("%v\n%s", err, src)
			}
			for _, s := range tc.valid {
				m := g.NewMatcher(v)
				if err := feed(m, s); err != nil || !m.CanEnd() {
					t.Errorf("valid call rejected (%v, can end %v): %q\n%s", err, m.CanEnd(), s, src)
				}
				// What the grammar allows parses back into calls.
				_, _, calls, err := tc.f.Parse(s)
				if err != nil || len(calls) == 0 {
					t.Errorf("Parse(%q) = %v, %v", s, calls, err)
				}
			}
			for _, s := range tc.invalid {
				m := g.NewMatcher(v)
				if err := feed(m, s); err == nil && m.CanEnd() {
					t.Errorf("invalid call accepted: %q", s)
				}
			}
		})
	}
	for _, k := range []Kind{QwenXML, GLM45, Content} {
		if _, err := fm(k).Grammar(weatherTools, GrammarOptions{}); err == nil {
			t.Errorf("%s: grammar without error", k)
		}
	}
}

// The default Token writes <...> markers as token references by text
// (grammar.ParseForVocab resolves them); Hermes needs none, so
// grammar.Parse takes its grammar and bytes match it.
func TestGrammarDefaultTokens(t *testing.T) {
	v, _ := testVocab(t)
	src, err := fm(Hermes).Grammar(weatherTools[:1], GrammarOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := grammar.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	m := g.NewMatcher(v)
	if err := m.AcceptString("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"x\"}}\n</tool_call>"); err != nil || !m.CanEnd() {
		t.Errorf("rejected: %v", err)
	}
	src, err = fm(KimiK2).Grammar(weatherTools[:1], GrammarOptions{})
	if err != nil || !strings.Contains(src, "<|tool_calls_section_begin|> ") {
		t.Errorf("kimi grammar without the token reference: %v\n%s", err, src)
	}
}
