package chat

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzTemplate compiles and renders arbitrary template text (a GGUF
// file's tokenizer.chat_template is outside bytes): errors are fine,
// panics are not (Compile and Render turn the engine's into errors).
// Unbounded macro recursion is left out: it overflows the goroutine
// stack, which no recover catches (a known limit of the engine).
func FuzzTemplate(f *testing.F) {
	paths, _ := filepath.Glob("testdata/templates/*.jinja")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{"{{ messages[0].content }}", "{% for m in messages %}{{ m.role | upper }}{% endfor %}",
		"{{ (1,2)[5] }}", "{{ 1/0 }}", "{{ 'a' * 3 }}{{ [1] + 2 }}"} {
		f.Add(s)
	}
	msgs := []Message{{Role: "system", Content: "s"}, {Role: "user", Content: "u"}}
	now := func() time.Time { return time.Unix(0, 0) }
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := Compile(src)
		if err != nil {
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("error %v does not wrap ErrTemplate", err)
			}
			return
		}
		if _, err := tmpl.Render(msgs, RenderOptions{AddGenerationPrompt: true, Now: now}); err != nil && !errors.Is(err, ErrTemplate) {
			t.Fatalf("error %v does not wrap ErrTemplate", err)
		}
	})
}
