package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/testenv"
)

func runIxctl(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), "ixctl", newRoot, args, cli.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return out.String(), errb.String(), code
}

func TestTokenizeJSON(t *testing.T) {
	model := filepath.Join(testenv.Shared(t, "testdata/tokenizer"), "llama3-bpe.gguf")
	// ../shared/testdata/tokenizer/README.md: "Hello, world!" with llama-bpe.
	for _, args := range [][]string{
		{"tokenize", "-m", model, "-p", "Hello, world!", "-o", "json"},
		{"tokenize", "-m", model, "-f", "-", "-o", "json"},
	} {
		out, errs, code := runIxctl(t, "Hello, world!", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var r struct {
			IDs   []int32 `json:"ids"`
			Detok string  `json:"detok"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %v in %q", args, err, out)
		}
		if want := []int32{9906, 11, 1917, 0}; !slices.Equal(r.IDs, want) || r.Detok != "Hello, world!" {
			t.Errorf("%v: got %v %q, want %v %q", args, r.IDs, r.Detok, want, "Hello, world!")
		}
	}
}

func TestTokenizeText(t *testing.T) {
	model := filepath.Join(testenv.Shared(t, "testdata/tokenizer"), "qwen3-bpe.gguf")
	out, errs, code := runIxctl(t, "", "tokenize", "-m", model, "-p", "Hi<|im_end|>", "--parse-special", "--add-special")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := " 13048 \"Hi\"\n151645 \"<|im_end|>\"\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestTokenizeErrors(t *testing.T) {
	dir := t.TempDir()
	unsupported := filepath.Join(dir, "pre.gguf")
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValue("llama")},
		{Key: "tokenizer.ggml.model", Value: gguf.MustValue("gpt2")},
		{Key: "tokenizer.ggml.pre", Value: gguf.MustValue("nonesuch")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.MustValue([]string{"a", "b"})},
		{Key: "tokenizer.ggml.merges", Value: gguf.MustValue([]string{"a b"})},
	}
	if err := gguf.WriteFile(unsupported, kvs, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
		code int // 2: a usage error
	}{
		{[]string{"tokenize", "-p", "x"}, []string{"-m MODEL.gguf is required"}, 2},
		{[]string{"tokenize", "-m", unsupported}, []string{"exactly one of -p TEXT and -f FILE"}, 2},
		{[]string{"tokenize", "-m", unsupported, "-p", "x", "-f", "y"}, []string{"exactly one of"}, 2},
		{[]string{"tokenize", "-m", unsupported, "-p", "x"}, []string{`pre-tokenizer "nonesuch"`, "llama-bpe", "qwen2", "kimi-k2"}, 1},
		{[]string{"tokenize", "-m", filepath.Join(dir, "missing.gguf"), "-p", "x"}, []string{"missing.gguf"}, 1},
	} {
		_, errs, code := runIxctl(t, "", c.args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: error %q does not mention %q", c.args, errs, w)
			}
		}
	}
}
