package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
)

// run runs ixctl with args and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), "ixctl", newRoot, args, cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := run(t, args...)
	if code != 0 {
		t.Fatalf("ixctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// TestModelTools chains the three commands: synth a model, quantize it,
// upcycle the result, checking each summary and file.
func TestModelTools(t *testing.T) {
	dir := t.TempDir()
	f32 := filepath.Join(dir, "m.F32.gguf")
	out := mustRun(t, "synth", "--arch", "llama", "--layers", "2", "--dim", "256", "--vocab", "300", "--out", f32)
	if !strings.Contains(out, "wrote "+f32) || !strings.Contains(out, "F32 21") {
		t.Errorf("synth summary:\n%s", out)
	}

	q := filepath.Join(dir, "m.Q4_K_M.gguf")
	var qr QuantizeResult
	if err := json.Unmarshal([]byte(mustRun(t, "quantize", f32, q, "Q4_K_M", "--threads", "2", "-o", "json")), &qr); err != nil {
		t.Fatal(err)
	}
	if qr.Target != "Q4_K_M" || qr.FileType != 15 || qr.OutBytes >= qr.InBytes || qr.TypeCounts["Q4_K"] == 0 {
		t.Errorf("quantize report: %+v", qr.Report)
	}
	f, err := gguf.Open(q)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Int("general.quantization_version"); v != 2 {
		t.Errorf("general.quantization_version %d, want 2", v)
	}
	f.Close()
	text := mustRun(t, "quantize", f32, filepath.Join(dir, "pure.gguf"), "Q8_0", "--pure")
	if !strings.Contains(text, "size:") || !strings.Contains(text, "Q8_0 16") {
		t.Errorf("quantize summary:\n%s", text)
	}

	moe := filepath.Join(dir, "moe.gguf")
	var ur UpcycleResult
	if err := json.Unmarshal([]byte(mustRun(t, "upcycle", q, moe, "--experts", "4", "--top-k", "2", "-o", "json")), &ur); err != nil {
		t.Fatal(err)
	}
	if ur.Experts != 4 || ur.ExpertsUsed != 2 || ur.Type != "Q4_K" {
		t.Errorf("upcycle report: %+v", ur.UpcycleReport)
	}
	f, err = gguf.Open(moe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, _ := f.Int("llama.expert_count"); n != 4 {
		t.Errorf("llama.expert_count %d, want 4", n)
	}
	dense, _ := gguf.Open(q)
	defer dense.Close()
	exps, ok := f.Tensor("blk.1.ffn_down_exps.weight")
	ffn, _ := dense.Tensor("blk.1.ffn_down.weight")
	if !ok || exps.Type != ffn.Type || !bytes.Equal(exps.Data[2*ffn.Size:3*ffn.Size], ffn.Data) {
		t.Error("expert 2 of blk.1.ffn_down_exps is not a copy of the dense ffn_down")
	}

	dry := mustRun(t, "quantize", f32, filepath.Join(dir, "dry.gguf"), "Q4_K_M", "--dry-run")
	if !strings.Contains(dry, "would quantize") {
		t.Errorf("quantize --dry-run:\n%s", dry)
	}
	if _, err := os.Stat(filepath.Join(dir, "dry.gguf")); err == nil {
		t.Error("quantize --dry-run wrote its output")
	}
	if dry := mustRun(t, "synth", "--preset", "llama-7b", "--type", "Q4_K_M", "--dry-run"); !strings.Contains(dry, "6.74B params, 3.8 GiB") {
		t.Errorf("synth --dry-run of llama-7b:\n%s", dry)
	}

	var sr SynthResult
	if err := json.Unmarshal([]byte(mustRun(t, "synth", "--arch", "deepseek2", "--type", "Q4_K_M", "--out", filepath.Join(dir, "ds.gguf"), "-o", "json")), &sr); err != nil {
		t.Fatal(err)
	}
	if sr.Arch != "deepseek2" || sr.Config.Experts != 16 || sr.FileBytes == 0 {
		t.Errorf("synth -o json: %+v", sr)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	f32 := filepath.Join(dir, "m.gguf")
	mustRun(t, "synth", "--arch", "llama", "--layers", "1", "--out", f32)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"synth", "--out", "x.gguf"}, "give --arch"},
		{[]string{"synth", "--arch", "gpt5", "--out", "x.gguf"}, "valid: llama, qwen2"},
		{[]string{"synth", "--arch", "llama"}, "--out FILE is required"},
		{[]string{"synth", "--arch", "deepseek2", "--type", "Q1_0", "--dry-run"}, "no fallback"},
		{[]string{"synth", "--arch", "llama", "--heads", "5", "--out", "x.gguf"}, "must be a multiple of --kv-heads"},
		{[]string{"synth", "--arch", "llama", "--type", "Q4_K_X", "--out", "x.gguf"}, "valid: F32 F16 BF16 Q8_0"},
		{[]string{"synth", "--preset", "kimi-k2-mini", "--arch", "llama", "--out", "x.gguf"}, "is a deepseek2 model"},
		{[]string{"quantize", f32, filepath.Join(dir, "o.gguf"), "Q3_K_XL"}, "unknown quantization type"},
		{[]string{"quantize", f32, filepath.Join(dir, "o.gguf"), "IQ2_XXS"}, "--imatrix-ones"},
		{[]string{"quantize", f32, f32, "Q8_0"}, "must differ"},
		{[]string{"quantize", filepath.Join(dir, "missing.gguf"), filepath.Join(dir, "o.gguf"), "Q8_0"}, "no such file"},
		{[]string{"upcycle", f32, filepath.Join(dir, "u.gguf")}, "--experts N and --top-k K are required"},
		{[]string{"upcycle", f32, filepath.Join(dir, "u.gguf"), "--experts", "4", "--top-k", "5"}, "--top-k 5"},
	} {
		code, _, errs := run(t, c.args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("ixctl %s: exit %d, stderr %q; want an error mentioning %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "o.gguf")); err == nil {
		t.Error("a failed quantize left its output file behind")
	}
	// upcycling a MoE is refused
	moe := filepath.Join(dir, "moe.gguf")
	mustRun(t, "synth", "--arch", "llama", "--experts", "4", "--layers", "1", "--out", moe)
	if code, _, errs := run(t, "upcycle", moe, filepath.Join(dir, "u.gguf"), "--experts", "4", "--top-k", "2"); code == 0 || !strings.Contains(errs, "already has 4 experts") {
		t.Errorf("upcycle of a MoE: exit %d, %q", code, errs)
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		want []string
	}{
		{"synth", []string{"kimi-k2-mini", "deepseek2", "--seed", "--threads", "Q4_K_M"}},
		{"quantize", []string{"MXFP4_MOE", "--pure", "IQ4_XS", "never quantized"}},
		{"upcycle", []string{"--experts", "--top-k", "--noise", "renormalise"}},
	} {
		out := mustRun(t, c.cmd, "--help")
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help does not mention %q", c.cmd, w)
			}
		}
	}
}

// TestProgressNotATerminal: with stderr not a terminal (a buffer here, a
// log file or a pipe in real use) the model tools write no bar frames,
// only a start and an end line.
func TestProgressNotATerminal(t *testing.T) {
	var b bytes.Buffer
	update, finish := newProgress(&b, "synth", false)
	for done := int64(0); done <= 1<<30; done += 1 << 24 {
		update(done, 1<<30)
	}
	finish()
	if strings.Contains(b.String(), "\r") || strings.Count(b.String(), "\n") != 2 || !strings.Contains(b.String(), "synth: 1.0 GiB to write") {
		t.Fatalf("progress into a buffer:\n%q", b.String())
	}

	// A real synth of ~80 MB (above progressMin, where a bar would draw).
	out := filepath.Join(t.TempDir(), "big.gguf")
	code, _, errs := run(t, "synth", "--arch", "llama", "--layers", "2", "--dim", "1024", "--ff", "2048", "--vocab", "300", "--out", out)
	if code != 0 {
		t.Fatalf("synth: %d %s", code, errs)
	}
	if strings.Contains(errs, "\r") || !strings.Contains(errs, "synth: ") || strings.Count(errs, "\n") > 2 {
		t.Fatalf("synth stderr into a buffer:\n%q", errs)
	}
}

// TestExitCodes: usage errors (flags, arguments, flag combinations) exit
// 2, failures of the work itself 1.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"synth", "--arch", "llama"}, cli.ExitUsage, "--out FILE is required"},
		{[]string{"synth", "--arch", "gpt5", "--out", "x.gguf"}, cli.ExitUsage, "valid: llama"},
		{[]string{"synth", "--arch", "llama", "--layers", "x"}, cli.ExitUsage, `invalid argument "x"`},
		{[]string{"synth", "--arch", "llama", "--heads", "5", "--out", "x.gguf"}, cli.ExitUsage, "--kv-heads"},
		{[]string{"synth", "--arch", "llama", "--out", filepath.Join(dir, "no", "such", "dir", "x.gguf")}, cli.ExitError, "no such file"},
		{[]string{"quantize", "a.gguf"}, cli.ExitUsage, "accepts 3 arg(s)"},
		{[]string{"quantize", filepath.Join(dir, "missing.gguf"), filepath.Join(dir, "o.gguf"), "Q8_0"}, cli.ExitError, "no such file"},
		{[]string{"quantize", "a.gguf", "b.gguf", "Q3_K_XL"}, cli.ExitUsage, "unknown quantization type"},
		{[]string{"drain"}, cli.ExitUsage, "accepts 1 arg(s)"},
		{[]string{"status", "--coordinator", "nowhere"}, cli.ExitUsage, "want HOST:PORT"},
		{[]string{"move", "13", "node-a", "--coordinator", "127.0.0.1:1"}, cli.ExitUsage, "LAYER:EXPERT"},
		{[]string{"plan", "--replicas", "-1", "--coordinator", "127.0.0.1:1"}, cli.ExitUsage, "--replicas must not be negative"},
		{[]string{"frobnicate"}, cli.ExitUsage, `unknown command "frobnicate"`},
		{[]string{"tokenize", "-m", "x.gguf"}, cli.ExitUsage, "exactly one of -p TEXT and -f FILE"},
	} {
		code, _, errs := run(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("ixctl %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
	}
}
