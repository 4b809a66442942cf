package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/ixlg"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
)

// run executes the coordinator command line and returns its exit status,
// stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), "coordinator", newRoot, args, cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func stories(t *testing.T) string {
	return testenv.Shared(t, "models/stories260K/stories260K.gguf")
}

func TestRunGreedy(t *testing.T) {
	code, out, errs := run(t, "run", "-m", stories(t), "-p", "Lily and Tom went to the", "-n", "32", "--temp", "0", "--no-display-prompt")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// llama.cpp's greedy text for this prompt (models/stories260K README).
	want := "park. They saw a big box with a big box. They wanted to play with it. They wanted to play with"
	if strings.TrimSpace(out) != want {
		t.Errorf("output %q\nwant     %q", out, want)
	}
	for _, s := range []string{"load time", "prompt eval time", "tokens per second", "eval time"} {
		if !strings.Contains(errs, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errs)
		}
	}
}

func TestRunLogitsOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.ixlg")
	code, _, errs := run(t, "run", "-m", stories(t), "--prompt-tokens", "1,403,407,261,378", "-n", "0", "--kv-type", "f32", "--logits-out", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lg := readIXLG(t, path)
	var ref struct {
		Tokens []int32     `json:"tokens"`
		Logits [][]float32 `json:"logits"`
	}
	b, _ := os.ReadFile(testenv.Shared(t, "models/stories260K/ref/stories260K-F32.once.logits.json"))
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(lg.Tokens) != 5 || lg.NVocab != 512 {
		t.Fatalf("IXLG holds %d tokens x %d", len(lg.Tokens), lg.NVocab)
	}
	for i := range ref.Logits {
		for v, want := range ref.Logits[i] {
			if d := lg.Row(i)[v] - want; d > 1e-3 || d < -1e-3 {
				t.Fatalf("position %d token %d: %g, llama.cpp %g", i, v, lg.Row(i)[v], want)
			}
		}
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	unsupported := filepath.Join(dir, "gpt2.gguf")
	if err := gguf.WriteFile(unsupported, []gguf.KV{{Key: "general.architecture", Value: gguf.MustValue("gpt2")}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.gguf")
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValue("llama")},
		{Key: "llama.block_count", Value: gguf.MustValue(uint32(1))},
		{Key: "llama.embedding_length", Value: gguf.MustValue(uint32(8))},
		{Key: "llama.attention.head_count", Value: gguf.MustValue(uint32(2))},
		{Key: "llama.vocab_size", Value: gguf.MustValue(uint32(4))},
	}
	if err := gguf.WriteFile(missing, kvs, []gguf.TensorSpec{{Name: "token_embd.weight", Type: gguf.TypeF32, Dims: []int64{8, 4}}}, [][]byte{make([]byte, 128)}); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.gguf")
	os.WriteFile(garbage, []byte("this is not a model file at all"), 0o644)
	long := strings.Repeat("Once upon a time ", 200)
	for _, c := range []struct {
		name  string
		args  []string
		want  string
		usage bool // a usage error: exit 2
	}{
		{"unsupported arch", []string{"run", "-m", unsupported, "--prompt-tokens", "1"}, `architecture "gpt2"`, false},
		{"missing tensor", []string{"run", "-m", missing, "--prompt-tokens", "1"}, "missing tensor output_norm.weight", false},
		{"prompt too long", []string{"run", "-m", stories(t), "-p", long, "--ctx", "64"}, "longer than the context", false},
		{"no prompt", []string{"run", "-m", stories(t)}, "exactly one of", true},
		{"bad token", []string{"run", "-m", stories(t), "--prompt-tokens", "1,99999"}, "outside the vocabulary", false},
		{"not gguf", []string{"run", "-m", garbage, "-p", "x"}, "not a GGUF file", false},
		{"bad kv type", []string{"run", "-m", stories(t), "-p", "x", "--kv-type", "q4"}, "unknown KV cache type", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := run(t, c.args...)
			if want := map[bool]int{false: 1, true: cli.ExitUsage}[c.usage]; code != want {
				t.Errorf("exit status %d, want %d", code, want)
			}
			if !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("stderr %q: want one line containing %q", errs, c.want)
			}
		})
	}
}

func TestPerplexityCLI(t *testing.T) {
	text := filepath.Join(testenv.Shared(t, "models"), "war-and-peace-40k.txt")
	base := filepath.Join(t.TempDir(), "base.ixlg")
	code, out, errs := run(t, "perplexity", "-m", stories(t), "-f", text, "--ctx", "128", "--kv-type", "f32", "--chunks", "20", "--save-logits", base, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep PerplexityReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	// llama.cpp's running value after 20 chunks (models/stories260K README).
	if rep.Chunks != 20 || rep.Running[19] < 55.2435-0.001 || rep.Running[19] > 55.2435+0.001 {
		t.Errorf("after 20 chunks PPL %.4f (%d chunks), llama.cpp 55.2435", rep.Running[len(rep.Running)-1], rep.Chunks)
	}
	q8 := testenv.Shared(t, "models/stories260K/stories260K-Q8_0.gguf")
	code, out, errs = run(t, "perplexity", "-m", q8, "-f", text, "--ctx", "128", "--kv-type", "f32", "--chunks", "20", "--kl-base", base, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	rep = PerplexityReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.KL == nil || rep.KL.Mean <= 0 || rep.KL.Mean > 0.05 || rep.KL.Top1 < 0.9 {
		t.Errorf("Q8_0 vs F32 KL report %+v: want a small positive mean and top-1 agreement above 90%%", rep.KL)
	}
}

// TestNoTiles checks --no-tiles end to end: with it, a Q4_K_M prompt's
// logits equal llama.cpp's no-repack reference bit for bit; with the AMX
// tiles (the default where the CPU has them) they stay within the
// reference's tolerance but are not all the same bits.
func TestNoTiles(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	var ref struct {
		Tokens    []int32     `json:"tokens"`
		Positions []int       `json:"positions"`
		Logits    [][]float32 `json:"logits"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "llama-dense.Q4_K_M.logits.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ref.Tokens))
	for i, id := range ref.Tokens {
		ids[i] = strconv.Itoa(int(id))
	}
	defer kernels.SetTiles(true)
	logits := func(flags ...string) *ixlg.File {
		t.Helper()
		path := filepath.Join(t.TempDir(), "out.ixlg")
		args := append([]string{"run", "-m", filepath.Join(dir, "llama-dense.Q4_K_M.gguf"), "--prompt-tokens", strings.Join(ids, ","),
			"-n", "0", "--kv-type", "f32", "-t", "2", "--logits-out", path}, flags...)
		if code, _, errs := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", flags, code, errs)
		}
		return readIXLG(t, path)
	}
	exact, tiles := logits("--no-tiles"), logits()
	if !kernels.TilesEnabled() {
		t.Fatal("tiles stayed off after a run without --no-tiles")
	}
	same := true
	for i, pos := range ref.Positions {
		for v, want := range ref.Logits[i] {
			if got := exact.Row(pos)[v]; math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("--no-tiles position %d token %d: %g, llama.cpp %g", pos, v, got, want)
			}
			got := tiles.Row(pos)[v]
			if math.Abs(float64(got-want)) > 1e-3*math.Max(1, math.Abs(float64(want))) {
				t.Fatalf("tiles position %d token %d: %g, llama.cpp %g", pos, v, got, want)
			}
			same = same && got == want
		}
	}
	if kernels.TilesAvailable() && same {
		t.Error("the tiles gave llama.cpp's vec_dot bits everywhere: did they run?")
	}
}

// readIXLG reads the IXLG logits file at path.
func readIXLG(t *testing.T, path string) *ixlg.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lg, err := ixlg.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return lg
}
