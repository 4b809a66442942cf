package chat

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inference-x/inference-x/internal/testenv"
)

// testNow is the clock of the golden renderings (gen_golden.py uses the same).
var testNow = func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC) }

type templateCase struct {
	Name                string                     `json:"name"`
	AddGenerationPrompt bool                       `json:"add_generation_prompt"`
	Messages            json.RawMessage            `json:"messages"`
	Tools               json.RawMessage            `json:"tools"`
	Extra               map[string]json.RawMessage `json:"extra"`
}

// lenient lists renderings where Python Jinja2 raises and the engine
// renders something: the engine is more permissive than Python about
// adding a string to a list. Servers flatten content parts to a string,
// so conversations from the HTTP API never reach these cases.
var lenient = map[string]bool{
	"deepseek_v3.content_parts": true,
}

// TestTemplatesGolden renders every real template (../shared) and our
// Kimi-K2 and Mistral templates (testdata/templates) for every case in
// testdata/cases.json and compares with the renderings of Python Jinja2
// configured as HF transformers' apply_chat_template (testdata/gen_golden.py).
func TestTemplatesGolden(t *testing.T) {
	var cases []templateCase
	b, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob("testdata/templates/*.jinja")
	if d := testenv.SharedDir(); d != "" {
		shared, _ := filepath.Glob(filepath.Join(d, "testdata/chat-templates/*.jinja"))
		if len(shared) < 6 {
			t.Fatalf("found %d templates in ../shared/testdata/chat-templates, want 6", len(shared))
		}
		paths = append(paths, shared...)
	} else {
		t.Log("../shared not found: testing only testdata/templates")
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".jinja")
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := Compile(string(src))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, c := range cases {
			key := name + "." + c.Name
			t.Run(key, func(t *testing.T) {
				vars := map[string]any{
					"messages":              c.Messages,
					"add_generation_prompt": c.AddGenerationPrompt,
					"bos_token":             "<BOS>",
					"eos_token":             "<EOS>",
				}
				if c.Tools != nil {
					vars["tools"] = c.Tools
				}
				for k, v := range c.Extra {
					vars[k] = v
				}
				got, err := tmpl.Execute(vars, testNow)
				golden := filepath.Join("testdata/golden", key)
				if want, rerr := os.ReadFile(golden + ".txt"); rerr == nil {
					if err != nil {
						t.Fatalf("render: %v", err)
					}
					if got != string(want) {
						t.Errorf("rendering differs from Jinja2's\n got: %q\nwant: %q", got, want)
					}
					return
				}
				want, rerr := os.ReadFile(golden + ".err")
				if rerr != nil {
					t.Fatalf("no golden rendering: %v (run testdata/gen_golden.py)", rerr)
				}
				if err == nil && !lenient[key] {
					t.Errorf("rendered %q; Jinja2 raises %s", got, strings.TrimSpace(string(want)))
				}
				if err != nil && !errors.Is(err, ErrTemplate) {
					t.Errorf("error %v does not wrap ErrTemplate", err)
				}
			})
		}
	}
}

// TestRender checks Render's conversion of Messages: null content for a
// tool-calling turn, tool calls with object arguments, BOS stripping, the
// chatml fallback for an empty template and raise_exception.
func TestRender(t *testing.T) {
	src, err := os.ReadFile("testdata/templates/mistral.jinja")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Compile(string(src))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{Role: "user", Content: "Weather in Paris?"},
		{Role: "assistant", ToolCalls: []ToolCall{{ID: "call_abc123456", Type: "function",
			Function: FunctionCall{Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}}}},
		{Role: "tool", ToolCallID: "call_abc123456", Content: `{"temp": 21}`},
		{Role: "assistant", Content: "21 °C."},
		{Role: "user", Content: "Thanks <3"},
	}
	got, err := tmpl.Render(msgs, RenderOptions{BOS: "<s>", EOS: "</s>", StripBOS: true, AddGenerationPrompt: true,
		Tools: json.RawMessage(`[{"type":"function","function":{"name":"get_weather","parameters":{}}}]`), Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	want := `[SYSTEM_PROMPT]You are a helpful assistant made by Mistral AI. Today is 2026-03-14.[/SYSTEM_PROMPT]` +
		`[INST]Weather in Paris?[/INST][TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abc123456"}]</s>` +
		`[TOOL_RESULTS]{"content": "{\"temp\": 21}", "call_id": "abc123456"}[/TOOL_RESULTS]21 °C.</s>` +
		`[AVAILABLE_TOOLS][{"name": "get_weather", "parameters": {}}][/AVAILABLE_TOOLS][INST]Thanks <3[/INST]`
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}

	_, err = tmpl.Render([]Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}}, RenderOptions{Now: testNow})
	if !errors.Is(err, ErrTemplate) || !strings.Contains(err.Error(), "alternate") {
		t.Errorf("two user turns: err = %v, want the template's raise_exception", err)
	}

	chatml, err := Compile("")
	if err != nil {
		t.Fatal(err)
	}
	got, err = chatml.Render([]Message{{Role: "user", Content: "hi"}}, RenderOptions{})
	if err != nil || got != "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" {
		t.Errorf("chatml fallback: %q, %v", got, err)
	}
	if chatml.Name() != "chatml" {
		t.Errorf("Name() = %q", chatml.Name())
	}
	if _, err := Compile("{% if %}"); !errors.Is(err, ErrTemplate) {
		t.Errorf("bad template: err = %v", err)
	}
}

func TestStrftime(t *testing.T) {
	got := Strftime(testNow(), "%d %b %Y %H:%M:%S %A %B %j %I%p %y %% %Q")
	if want := "14 Mar 2026 15:09:26 Saturday March 073 03PM 26 % %Q"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
