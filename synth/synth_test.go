package synth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/model"
)

func TestNormals(t *testing.T) {
	const n = 1 << 20
	x := make([]float32, n)
	for r := 0; r < 16; r++ {
		g := newRNG(42, 7, r)
		g.normals(x[r*n/16:(r+1)*n/16], 1)
	}
	var sum, sum2 float64
	tail := 0
	for _, v := range x {
		sum += float64(v)
		sum2 += float64(v) * float64(v)
		if math.Abs(float64(v)) > 3 {
			tail++
		}
	}
	mean, vr := sum/n, sum2/n-(sum/n)*(sum/n)
	if math.Abs(mean) > 0.005 || math.Abs(vr-1) > 0.01 {
		t.Errorf("mean %.4f variance %.4f, want 0 and 1", mean, vr)
	}
	// P(|z| > 3) = 0.0027
	if p := float64(tail) / n; math.Abs(p-0.0027) > 0.0004 {
		t.Errorf("P(|z|>3) = %.5f, want 0.0027", p)
	}
	// Kolmogorov-Smirnov distance to the normal CDF
	sorted := append([]float32(nil), x[:1<<16]...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var d float64
	for i, v := range sorted {
		cdf := 0.5 * (1 + math.Erf(float64(v)/math.Sqrt2))
		d = max(d, math.Abs(cdf-float64(i)/float64(len(sorted))), math.Abs(cdf-float64(i+1)/float64(len(sorted))))
	}
	if d > 1.63/math.Sqrt(float64(len(sorted))) { // 1% level
		t.Errorf("KS distance %.5f to N(0,1) is too large", d)
	}
	u := make([]float32, 10000)
	g := newRNG(1, 1, 1)
	g.uniforms(u, 0.8, 1.2)
	for _, v := range u {
		if v < 0.8 || v >= 1.2 {
			t.Fatalf("uniform sample %v outside [0.8, 1.2)", v)
		}
	}
}

func TestVocab(t *testing.T) {
	for _, n := range []int{MinVocab, 512, 32000, 151936} {
		v, err := BuildVocab(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Tokens) != n || len(v.Scores) != n || len(v.Types) != n {
			t.Fatalf("vocab %d: %d tokens, %d scores, %d types", n, len(v.Tokens), len(v.Scores), len(v.Types))
		}
		seen := map[string]bool{}
		for _, tok := range v.Tokens {
			if seen[tok] {
				t.Fatalf("vocab %d: duplicate token %q", n, tok)
			}
			seen[tok] = true
		}
		if v.Tokens[0] != "<unk>" || v.Tokens[1] != "<s>" || v.Tokens[2] != "</s>" || v.Tokens[3+0x41] != "<0x41>" || v.Types[3+0x41] != tokenByte {
			t.Errorf("vocab %d: special or byte tokens misplaced: %q", n, v.Tokens[:5])
		}
	}
	if _, err := BuildVocab(100); err == nil || !strings.Contains(err.Error(), "at least 259") {
		t.Errorf("small vocab: %v", err)
	}
}

func generate(t testing.TB, c Config, opt Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := Generate(context.Background(), c, opt, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	c, _ := DefaultConfig("deepseek2")
	a := generate(t, c, Options{Type: "Q4_K_M", Seed: 3, Threads: 1})
	b := generate(t, c, Options{Type: "Q4_K_M", Seed: 3, Threads: 5})
	if !bytes.Equal(a, b) {
		t.Fatal("1 and 5 threads wrote different bytes")
	}
	d := generate(t, c, Options{Type: "Q4_K_M", Seed: 4, Threads: 2})
	if bytes.Equal(a, d) {
		t.Fatal("seeds 3 and 4 wrote the same model")
	}
}

// TestArchitectures writes every architecture in a few types and checks
// the file: tensors the engine's config reader understands, sizes, types.
func TestArchitectures(t *testing.T) {
	dir := t.TempDir()
	for _, arch := range Architectures() {
		for _, typ := range []string{"F32", "Q4_K_M", "Q8_0"} {
			c, err := DefaultConfig(arch)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, arch+"."+typ+".gguf")
			rep, err := WriteFile(context.Background(), c, Options{Type: typ, Seed: 1}, p)
			if err != nil {
				t.Fatalf("%s %s: %v", arch, typ, err)
			}
			f, err := gguf.Open(p)
			if err != nil {
				t.Fatalf("%s %s: %v", arch, typ, err)
			}
			cfg, err := model.ReadConfig(f)
			if err != nil {
				t.Errorf("%s %s: engine config: %v", arch, typ, err)
			} else if err := cfg.Validate(); err != nil {
				t.Errorf("%s %s: engine config: %v", arch, typ, err)
			}
			if cfg.Layers != c.Layers || cfg.Embd != c.Embd || cfg.Vocab != c.Vocab || cfg.Experts != c.Experts {
				t.Errorf("%s: engine reads %+v", arch, cfg)
			}
			var bytes int64
			for _, tn := range f.Tensors {
				bytes += tn.Size
				if typ == "Q8_0" && len(tn.Dims) > 1 && tn.Type != gguf.TypeQ8_0 && !strings.Contains(tn.Name, "gate_inp") {
					t.Errorf("%s Q8_0: %s is %v", arch, tn.Name, tn.Type)
				}
				if len(tn.Dims) == 1 && tn.Type != gguf.TypeF32 {
					t.Errorf("%s %s: vector %s is %v, want F32", arch, typ, tn.Name, tn.Type)
				}
			}
			if bytes != rep.Bytes || len(f.Tensors) != rep.Tensors {
				t.Errorf("%s %s: report says %d bytes in %d tensors, file has %d in %d", arch, typ, rep.Bytes, rep.Tensors, bytes, len(f.Tensors))
			}
			if ft, _ := f.Int("general.file_type"); uint32(ft) != rep.FileType {
				t.Errorf("%s %s: general.file_type %d, want %d", arch, typ, ft, rep.FileType)
			}
			f.Close()
		}
	}
}

// TestEngineLoads runs the engine's forward pass on the dense
// architectures it implements and checks the logits have the intended
// scale (std about 3).
func TestEngineLoads(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2", "qwen3"} {
		c, _ := DefaultConfig(arch)
		p := filepath.Join(t.TempDir(), arch+".gguf")
		if _, err := WriteFile(context.Background(), c, Options{Type: "Q8_0", Seed: 1}, p); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.Load(f)
		if err != nil {
			f.Close()
			if strings.Contains(err.Error(), "unsupported") {
				t.Logf("%s: the engine does not run it yet: %v", arch, err)
				continue
			}
			t.Fatalf("%s: %v", arch, err)
		}
		logits := forward(t, m, []int32{1, 300, 301, 302})
		var sum, sum2 float64
		for _, v := range logits {
			sum += float64(v)
			sum2 += float64(v) * float64(v)
		}
		n := float64(len(logits))
		std := math.Sqrt(sum2/n - sum*sum/n/n)
		if std < 1 || std > 6 || math.IsNaN(std) {
			t.Errorf("%s: logits std %.2f, want about 3", arch, std)
		}
		f.Close()
	}
}

func forward(t *testing.T, m *model.Model, toks []int32) []float32 {
	t.Helper()
	r := m.NewRunner(model.DefaultOptions())
	defer r.Close()
	seq, err := m.NewSequence(64, model.KVF32)
	if err != nil {
		t.Fatal(err)
	}
	var b model.Batch
	for i, tok := range toks {
		b.Add(seq, tok, i, i == len(toks)-1)
	}
	out, err := r.Forward(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		arch   string
		edit   func(*Config)
		substr string
	}{
		{"llama", func(c *Config) { c.Heads = 3 }, "multiple of --kv-heads"},
		{"llama", func(c *Config) { c.Embd = 100 }, "multiple of 32"},
		{"llama", func(c *Config) { c.Vocab = 10 }, "at least 259"},
		{"llama", func(c *Config) { c.Experts, c.ExpertsUsed = 4, 5 }, "--experts-used 5"},
		{"qwen3", func(c *Config) { c.Experts = 4 }, "qwen3moe"},
		{"qwen2", func(c *Config) { c.HeadDim = 32 }, "--heads × --head-dim = --dim"},
		{"deepseek2", func(c *Config) { c.LeadingDense = 2 }, "--leading-dense"},
		{"deepseek2", func(c *Config) { c.ExpertGroups = 3 }, "multiple of --groups"},
		{"deepseek2", func(c *Config) { c.Layers = 27 }, "Lite"},
		{"deepseek2", func(c *Config) { c.RopeDim = 31 }, "--rope-dim 31"},
		{"qwen3moe", func(c *Config) { c.ExpertFF = 0 }, "--expert-ff"},
	} {
		cfg, _ := DefaultConfig(c.arch)
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.substr) {
			t.Errorf("%s: error %v, want one mentioning %q", c.arch, err, c.substr)
		}
	}
	if _, err := DefaultConfig("gpt2"); err == nil || !strings.Contains(err.Error(), "deepseek2") {
		t.Errorf("unknown arch: %v", err)
	}
	if _, err := Preset("nope"); err == nil || !strings.Contains(err.Error(), "llama-7b") {
		t.Errorf("unknown preset: %v", err)
	}
}

// TestPresetSizes checks the presets' shapes and sizes without writing them.
func TestPresetSizes(t *testing.T) {
	for _, c := range []struct {
		preset   string
		typ      string
		min, max float64 // GB of tensor data
	}{
		{"llama-7b", "Q4_K_M", 3.7, 4.2},     // llama.cpp: 3.80 GiB = 4.08 GB
		{"kimi-k2-mini", "Q4_K_M", 2.7, 3.3}, // "about 3 GB"
		{"qwen3-30b-a3b", "Q4_K_M", 17, 19.5},
		{"mixtral-mini", "Q4_K_M", 0.08, 0.3},
	} {
		cfg, err := Preset(c.preset)
		if err != nil {
			t.Fatal(err)
		}
		_, specs, err := Plan(cfg, Options{Type: c.typ})
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, s := range specs {
			rb, _ := s.Type.RowBytes(int(s.Dims[0]))
			n := int64(rb)
			for _, d := range s.Dims[1:] {
				n *= d
			}
			total += n
		}
		if gb := float64(total) / 1e9; gb < c.min || gb > c.max {
			t.Errorf("%s %s: %.2f GB, want %.1f to %.1f", c.preset, c.typ, gb, c.min, c.max)
		}
	}
}

func TestTypes(t *testing.T) {
	c, _ := DefaultConfig("llama")
	c.Layers = 1
	// a bare ggml type: every matrix in it
	_, specs, err := Plan(c, Options{Type: "Q5_K"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if len(s.Dims) > 1 && s.Type != gguf.TypeQ5_K {
			t.Errorf("Q5_K: %s is %v", s.Name, s.Type)
		}
	}
	// an imatrix type gets the all-ones matrix
	b := generate(t, c, Options{Type: "IQ2_XXS", Seed: 1})
	if len(b) == 0 {
		t.Fatal("no output")
	}
	if _, _, err := Plan(c, Options{Type: "Q9_9"}); err == nil || !strings.Contains(err.Error(), "Q4_K_M") {
		t.Errorf("unknown type: %v", err)
	}
}

// TestRowsIndependentOfOtherTensors: a tensor's values depend on the seed
// and its name only, so a 1-layer and a 2-layer model share layer 0.
func TestRowsIndependentOfOtherTensors(t *testing.T) {
	dir := t.TempDir()
	c, _ := DefaultConfig("llama")
	hashes := map[int][32]byte{}
	for _, layers := range []int{1, 2} {
		c.Layers = layers
		p := filepath.Join(dir, "m.gguf")
		if _, err := WriteFile(context.Background(), c, Options{Seed: 9}, p); err != nil {
			t.Fatal(err)
		}
		f, _ := gguf.Open(p)
		tn, _ := f.Tensor("blk.0.ffn_down.weight")
		hashes[layers] = sha256.Sum256(tn.Data)
		f.Close()
		os.Remove(p)
	}
	if hashes[1] != hashes[2] {
		t.Error("blk.0.ffn_down differs between a 1-layer and a 2-layer model")
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, _ := DefaultConfig("llama")
	var b bytes.Buffer
	if _, err := Generate(ctx, c, Options{Type: "Q4_K_M"}, &b); err == nil {
		t.Fatal("Generate ignored a cancelled context")
	}
}
