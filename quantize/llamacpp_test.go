package quantize_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
	"github.com/inference-x/inference-x/quantize"
	"github.com/inference-x/inference-x/synth"
)

// llamaref returns the llama.cpp peer driver (../shared/peer), skipping
// the test when it is not installed.
func llamaref(t testing.TB) string {
	t.Helper()
	p := os.Getenv("LLAMAREF")
	if p == "" {
		home := os.Getenv("IX_PEER_HOME")
		if home == "" {
			h, _ := os.UserHomeDir()
			home = filepath.Join(h, ".cache", "ix-peer")
		}
		p = filepath.Join(home, "bin", "llamaref")
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("llama.cpp peer not installed at %s (bash ../shared/peer/setup.sh installs it; LLAMAREF overrides the path): skipping the comparison with llama.cpp", p)
	}
	return p
}

// peerQuantize runs llama.cpp's quantizer on in.
func peerQuantize(t *testing.T, in, out, typ string, extra ...string) {
	t.Helper()
	args := append([]string{"quantize", in, out, typ, "--threads", "2"}, extra...)
	raw, err := exec.Command(llamaref(t), args...).Output()
	var res struct {
		OK  bool   `json:"ok"`
		Log string `json:"log"`
	}
	if jerr := json.Unmarshal(raw, &res); err != nil || jerr != nil || !res.OK {
		t.Fatalf("llamaref %v: %v %s", args, err, raw)
	}
}

// writeSynth writes a synthetic F32 model.
func writeSynth(t *testing.T, dir, name string, c synth.Config) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Seed: 7}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// ours runs Quantize on the file at in.
func ours(t *testing.T, in, out string, target quantize.Target, imatrix bool, threads int) quantize.Report {
	t.Helper()
	f, err := gguf.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rep, err := quantize.Quantize(context.Background(), f, w, quantize.Options{Target: target, ImatrixOnes: imatrix, Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// sameTensors compares two GGUF files tensor by tensor (by name: type,
// shape, bytes) and reports whether the whole files are identical.
func sameTensors(t *testing.T, gotPath, wantPath string) bool {
	t.Helper()
	got, err := gguf.Open(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := gguf.Open(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, llama.cpp wrote %d", len(got.Tensors), len(want.Tensors))
	}
	for _, w := range want.Tensors {
		g, ok := got.Tensor(w.Name)
		if !ok {
			t.Errorf("missing tensor %s", w.Name)
			continue
		}
		if g.Type != w.Type {
			t.Errorf("%s: type %v, llama.cpp chose %v", w.Name, g.Type, w.Type)
			continue
		}
		if !bytes.Equal(g.Data, w.Data) {
			t.Errorf("%s (%v): data differs from llama.cpp's", w.Name, w.Type)
		}
	}
	a, _ := os.ReadFile(gotPath)
	b, _ := os.ReadFile(wantPath)
	return bytes.Equal(a, b)
}

func hasQuantizer(typ gguf.Type) bool {
	f, err := kernels.Lookup(typ)
	return err == nil && f.Quantize != nil
}

// TestPureMatchesLlamaCpp quantizes a synthetic F32 llama with --pure to
// every deterministic type and compares the tensors with llama.cpp's.
func TestPureMatchesLlamaCpp(t *testing.T) {
	llamaref(t)
	dir := t.TempDir()
	c, _ := synth.DefaultConfig("llama")
	in := writeSynth(t, dir, "llama.F32.gguf", c)
	types := []string{"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K",
		"IQ4_NL", "IQ4_XS", "IQ3_S", "TQ1_0", "TQ2_0", "MXFP4_MOE", "F16", "BF16"}
	if testing.Short() {
		types = []string{"Q4_0", "Q8_0", "Q4_K_M", "Q6_K", "IQ4_XS"}
	}
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			target, err := quantize.ParseTarget(typ, true)
			if err != nil {
				t.Fatal(err)
			}
			if !hasQuantizer(target.Base) {
				t.Skipf("kernels has no %v quantizer in this build", target.Base)
			}
			ref := filepath.Join(dir, "ref."+typ+".gguf")
			got := filepath.Join(dir, "ours."+typ+".gguf")
			peerQuantize(t, in, ref, typ, "--pure")
			ours(t, in, got, target, false, 3)
			if !sameTensors(t, got, ref) && !t.Failed() {
				t.Errorf("tensors match but the files differ (metadata or layout)")
			}
		})
	}
}

// TestPresetsMatchLlamaCpp compares the mixed presets' per-tensor types
// and bytes with llama.cpp's on a dense llama, an 8-expert llama (the
// n_expert == 8 rules) and a deepseek2 MoE (MLA tensors, shared experts,
// a dense leading layer, rows that need fallbacks).
func TestPresetsMatchLlamaCpp(t *testing.T) {
	llamaref(t)
	dir := t.TempDir()
	llama, _ := synth.DefaultConfig("llama")
	llama.Layers = 8
	mixtral, _ := synth.DefaultConfig("llama")
	mixtral.Experts, mixtral.ExpertsUsed, mixtral.KVHeads, mixtral.FF = 8, 2, 1, 256
	ds, _ := synth.DefaultConfig("deepseek2")
	ds.Layers = 3
	models := []struct {
		name  string
		cfg   synth.Config
		types []string
	}{
		{"llama", llama, []string{"Q4_K_M", "Q4_K_S", "Q3_K_M", "Q2_K", "Q5_K_M", "Q4_0", "IQ4_XS", "IQ2_XXS", "Q2_K_S"}},
		{"mixtral8", mixtral, []string{"Q4_K_M", "Q2_K", "IQ4_NL", "MXFP4_MOE"}},
		{"deepseek2", ds, []string{"Q4_K_M", "Q3_K_M", "Q6_K", "IQ4_XS", "MXFP4_MOE"}},
	}
	if testing.Short() {
		models[0].types = []string{"Q4_K_M", "Q3_K_M"}
		models[1].types = []string{"Q4_K_M"}
		models[2].types = []string{"Q4_K_M"}
	}
	for _, m := range models {
		in := writeSynth(t, dir, m.name+".F32.gguf", m.cfg)
		for _, typ := range m.types {
			t.Run(m.name+"/"+typ, func(t *testing.T) {
				target, err := quantize.ParseTarget(typ, false)
				if err != nil {
					t.Fatal(err)
				}
				f, _ := gguf.Open(in)
				info, _ := quantize.ModelInfoFromFile(f)
				var infos []quantize.TensorInfo
				for _, x := range f.Tensors {
					infos = append(infos, quantize.TensorInfo{Name: x.Name, Type: x.Type, Dims: x.Dims})
				}
				f.Close()
				plan, err := quantize.NewPlan(info, target, false, infos)
				if err != nil {
					t.Fatal(err)
				}
				imatrix := plan.NeedsImatrix
				if err := quantize.CheckPlan(plan, true); err != nil {
					t.Skipf("%v", err)
				}
				ref := filepath.Join(dir, "ref."+m.name+"."+typ+".gguf")
				got := filepath.Join(dir, "ours."+m.name+"."+typ+".gguf")
				var extra []string
				if imatrix {
					extra = append(extra, "--imatrix-ones")
				}
				peerQuantize(t, in, ref, typ, extra...)
				ours(t, in, got, target, imatrix, 2)
				if !sameTensors(t, got, ref) && !t.Failed() {
					t.Errorf("tensors match but the files differ (metadata or layout)")
				}
			})
		}
	}
}

// TestRequantizeMatchesLlamaCpp requantizes a Q8_0 file to Q4_K_M: the
// input is decoded exactly as ggml decodes it.
func TestRequantizeMatchesLlamaCpp(t *testing.T) {
	llamaref(t)
	dir := t.TempDir()
	c, _ := synth.DefaultConfig("qwen3")
	in := writeSynth(t, dir, "qwen3.F32.gguf", c)
	q8 := filepath.Join(dir, "qwen3.Q8_0.gguf")
	ours(t, in, q8, mustParse(t, "Q8_0"), false, 2)
	ref := filepath.Join(dir, "ref.gguf")
	got := filepath.Join(dir, "ours.gguf")
	peerQuantize(t, q8, ref, "Q4_K_M", "--allow-requantize")
	rep := ours(t, q8, got, mustParse(t, "Q4_K_M"), false, 2)
	if !rep.Requantized {
		t.Error("report does not say the input was requantized")
	}
	sameTensors(t, got, ref)
}

func mustParse(t *testing.T, name string) quantize.Target {
	t.Helper()
	tg, err := quantize.ParseTarget(name, false)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}
