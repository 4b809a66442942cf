package tokenizer

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
)

var (
	updatePeer = flag.Bool("update-peer", false,
		"regenerate testdata/peer-*.jsonl with llama.cpp's llamaref (../shared/peer; needs $IX_PEER_HOME or ~/.cache/ix-peer)")
	peerLong = flag.Bool("peer-long", false, "compare the 1 MiB benchmark text with llama.cpp's llamaref on every golden vocabulary")
)

// llamarefPath returns the peer harness's llamaref, or "" if not installed.
func llamarefPath() string {
	home := os.Getenv("IX_PEER_HOME")
	if home == "" {
		h, _ := os.UserHomeDir()
		home = filepath.Join(h, ".cache", "ix-peer")
	}
	p := filepath.Join(home, "bin", "llamaref")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// llamarefTokenize runs llamaref tokenize on text.
func llamarefTokenize(t testing.TB, llamaref, model, text string, addSpecial, parseSpecial bool) []int32 {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "prompt.txt")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"tokenize", model, "", "--prompt-file", tmp}
	if !addSpecial {
		args = append(args, "--no-bos")
	}
	if parseSpecial {
		args = append(args, "--parse-special")
	}
	res, err := exec.Command(llamaref, args...).Output()
	if err != nil {
		t.Fatalf("llamaref %v: %v", args, err)
	}
	var r struct {
		OK     bool    `json:"ok"`
		Tokens []int32 `json:"tokens"`
	}
	if err := json.Unmarshal(res, &r); err != nil || !r.OK {
		t.Fatalf("llamaref %v: %.300s", args, res)
	}
	return r.Tokens
}

// TestPeerLongText (with -peer-long) checks the 1 MiB benchmark text,
// tokenized in one call, against llama.cpp on every golden vocabulary.
func TestPeerLongText(t *testing.T) {
	if !*peerLong {
		t.Skip("run with -peer-long")
	}
	llamaref := llamarefPath()
	if llamaref == "" {
		t.Skip("needs the peer harness's llamaref (../shared/peer/setup.sh)")
	}
	text := englishProse(t)
	dir := testenv.Shared(t, "testdata/tokenizer")
	for _, vocab := range goldenVocabs {
		path := filepath.Join(dir, vocab+".gguf")
		want := llamarefTokenize(t, llamaref, path, text, true, true)
		got := openTokenizer(t, path).Encode(text, true, true)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d tokens differ from llama.cpp's %d", vocab, len(got), len(want))
			continue
		}
		t.Logf("%s: %d tokens equal llama.cpp's", vocab, len(got))
	}
}

// peerConfigs are pre-tokenizers without goldens in ../shared, checked on
// a golden vocabulary whose tokenizer.ggml.pre is rewritten. Their
// references in testdata/peer-<pre>.jsonl come from llama.cpp itself
// (the same libllama as the goldens, through the peer's llamaref).
var peerConfigs = []struct{ pre, vocab string }{
	{"deepseek-llm", "deepseek-v3-bpe"},
	{"default", "gpt2-bpe"},
	{"kimi-k2", "deepseek-v3-bpe"},
	{"qwen35", "qwen3-bpe"},
	{"dbrx", "llama3-bpe"}, // llama3's regex without ignore_merges
}

type peerCase struct {
	Case         string  `json:"case"`
	Text         string  `json:"text"`
	AddSpecial   bool    `json:"add_special"`
	ParseSpecial bool    `json:"parse_special"`
	IDs          []int32 `json:"ids"`
}

// withPre writes a copy of the GGUF at src whose tokenizer.ggml.pre is pre.
func withPre(t testing.TB, src, pre string) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs := slices.Clone(f.KV)
	for i := range kvs {
		if kvs[i].Key == keyPre {
			kvs[i].Value = gguf.MustValue(pre)
		}
	}
	dst := filepath.Join(t.TempDir(), pre+".gguf")
	if err := gguf.WriteFile(dst, kvs, nil, nil); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestPeerPreTokenizers(t *testing.T) {
	dir := testenv.Shared(t, "testdata/tokenizer")
	for _, pc := range peerConfigs {
		t.Run(pc.pre, func(t *testing.T) {
			path := withPre(t, filepath.Join(dir, pc.vocab+".gguf"), pc.pre)
			ref := filepath.Join("testdata", "peer-"+pc.pre+".jsonl")
			if *updatePeer {
				writePeerGolden(t, path, ref, readGolden(t, filepath.Join(dir, pc.vocab+".jsonl")))
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := New(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(ref)
			if err != nil {
				t.Fatalf("%v (regenerate with -update-peer)", err)
			}
			pass, n := 0, 0
			for line := range strings.Lines(string(b)) {
				var c peerCase
				if err := json.Unmarshal([]byte(line), &c); err != nil {
					t.Fatal(err)
				}
				n++
				if got := tok.Encode(c.Text, c.AddSpecial, c.ParseSpecial); !slices.Equal(got, c.IDs) {
					t.Errorf("%s add=%v parse=%v: text %q\n  ids  %v\n  want %v", c.Case, c.AddSpecial, c.ParseSpecial, short(c.Text), got, c.IDs)
					continue
				}
				pass++
			}
			t.Logf("%s on %s: %d/%d cases pass", pc.pre, pc.vocab, pass, n)
		})
	}
}

// writePeerGolden tokenizes the texts of the hand-made cases and of every
// tenth War and Peace chunk with llamaref and writes them to ref.
func writePeerGolden(t *testing.T, gguf, ref string, cases []goldenCase) {
	llamaref := llamarefPath()
	if llamaref == "" {
		t.Fatal("-update-peer needs llamaref (../shared/peer/setup.sh)")
	}
	out, err := os.Create(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := bufio.NewWriter(out)
	defer w.Flush()
	tenth := map[string]bool{} // the chunks the goldens also run with add_special
	for _, c := range cases {
		if c.AddSpecial {
			tenth[c.Case] = true
		}
	}
	seen := map[string]bool{}
	for _, c := range cases {
		key := fmt.Sprint(c.Case, c.AddSpecial, c.ParseSpecial)
		// llamaref reads the prompt with strlen: texts with NUL are left out.
		if seen[key] || strings.Contains(c.Text, "\x00") || c.AddSpecial != c.ParseSpecial || !tenth[c.Case] {
			continue
		}
		seen[key] = true
		ids := llamarefTokenize(t, llamaref, gguf, c.Text, c.AddSpecial, c.ParseSpecial)
		line, _ := json.Marshal(peerCase{c.Case, c.Text, c.AddSpecial, c.ParseSpecial, ids})
		w.Write(append(line, '\n'))
	}
}
