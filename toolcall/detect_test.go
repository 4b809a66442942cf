package toolcall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The real templates of ../shared/testdata/chat-templates and the Kimi-K2
// and Mistral ones of chat/testdata (the GGUFs of ../shared/testdata carry
// no tokenizer.chat_template).
func TestDetectRealTemplates(t *testing.T) {
	want := map[string]struct {
		kind  Kind
		think string
	}{
		"deepseek_v3": {DeepSeek, ""},
		"gemma4":      {Content, ""},
		"llama3":      {Content, ""}, // the plain Llama 3 template renders no tools
		"nemotron35":  {QwenXML, "<think>"},
		"qwen3":       {Hermes, "<think>"},
		"qwen38":      {QwenXML, "<think>"},
		"kimi_k2":     {KimiK2, ""},
		"mistral":     {Mistral, ""},
	}
	seen := 0
	for _, dir := range []string{"../../shared/testdata/chat-templates", "../chat/testdata/templates"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.jinja"))
		for _, p := range files {
			name := strings.TrimSuffix(filepath.Base(p), ".jinja")
			w, ok := want[name]
			if !ok {
				t.Errorf("%s: no expectation", p)
				continue
			}
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			seen++
			f := Detect(string(src))
			if f.Kind != w.kind || f.Think != w.think {
				t.Errorf("%s: Detect = %s think %q, want %s think %q", name, f.Kind, f.Think, w.kind, w.think)
			}
		}
	}
	if seen < 6 {
		t.Skipf("only %d templates found (../shared missing?)", seen)
	}
}

func TestDetectSynthetic(t *testing.T) {
	for src, kind := range map[string]Kind{
		"{{ '<|start|>assistant<|channel|>final<|message|>' }}":                                       Harmony,
		"'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>'+ tool['function']['name'] + '<｜tool▁sep｜>' + args": DeepSeek31,
		"[gMASK]<sop>{{ '<tool_call>' + name }}<arg_key>{{ k }}</arg_key>":                            GLM45,
		"<|start_header_id|>ipython<|end_header_id|> {{ tools }}":                                     Llama3,
		"{{ '[TOOL_CALLS]' + name + '[ARGS]' + args }}":                                               Mistral,
		"plain {{ messages }}": Content,
	} {
		if f := Detect(src); f.Kind != kind {
			t.Errorf("Detect(%q) = %s, want %s", src, f.Kind, kind)
		}
	}
	if f := Detect("{{ '[TOOL_CALLS]' + name + '[ARGS]' }}"); !f.mistralArgs {
		t.Error("mistral [ARGS] variant not detected")
	}
}

// The assistant turns the real templates render from a tool call (the
// goldens of chat/testdata) parse back into that call, and the prompt
// that opens <think> is recognised.
func TestRenderedCallsParseBack(t *testing.T) {
	for _, tc := range []struct{ tmpl, golden, end string }{
		{"../../shared/testdata/chat-templates/qwen3.jinja", "qwen3", "<|im_end|>"},
		{"../../shared/testdata/chat-templates/qwen38.jinja", "qwen38", "<|im_end|>"},
		{"../../shared/testdata/chat-templates/nemotron35.jinja", "nemotron35", "<|im_end|>"},
		{"../chat/testdata/templates/kimi_k2.jinja", "kimi_k2", "<|im_end|>"},
	} {
		src, err1 := os.ReadFile(tc.tmpl)
		gold, err2 := os.ReadFile("../chat/testdata/golden/" + tc.golden + ".tools.txt")
		if err1 != nil || err2 != nil {
			t.Skipf("%s: %v %v", tc.golden, err1, err2)
		}
		f := Detect(string(src))
		f.NewID = seqID
		g := string(gold)
		m := f.markers()[0]
		i := strings.Index(g, m)
		// The tool-call marker also appears in the system prompt's instructions.
		if j := strings.LastIndex(g[:strings.Index(g, "Weather in Paris?")+1], m); j >= 0 {
			i = strings.Index(g[j+len(m):], m) + j + len(m)
		}
		if i < 0 {
			t.Fatalf("%s: no %s in the golden", tc.golden, m)
		}
		turn := g[i:]
		turn = turn[:strings.Index(turn, tc.end)]
		_, _, calls, err := f.Parse(turn)
		if err != nil || len(calls) != 1 || calls[0].Name != "get_weather" || strings.ReplaceAll(calls[0].Arguments, " ", "") != `{"city":"Paris"}` {
			t.Errorf("%s: Parse(%q) = %+v, %v", tc.golden, turn, calls, err)
		}
		if f.Think != "" {
			if !f.WithPrompt(g).ThinkingOpen && tc.golden != "qwen3" {
				t.Errorf("%s: prompt ending in <think> not seen as open", tc.golden)
			}
		}
	}
}
