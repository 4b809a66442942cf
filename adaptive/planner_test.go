package adaptive

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/synth"
)

func openModel(t testing.TB, rel string) *model.Model {
	t.Helper()
	return experttest.OpenModel(t, testenv.Shared(t, rel))
}

func newPlanner(t testing.TB, m *model.Model, cfg Config) *Planner {
	t.Helper()
	p, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// lastLogits evaluates toks with precision prec and returns the last
// position's logits.
func lastLogits(t testing.TB, m *model.Model, prec *model.Precision, toks []int32) []float32 {
	t.Helper()
	r := m.NewRunner(model.Options{Threads: 2, MaxBatch: 32})
	defer r.Close()
	seq, _ := m.NewSequence(64, model.KVF32)
	seq.SetPrecision(prec)
	defer seq.SetPrecision(nil)
	var out []float32
	if err := r.Eval(context.Background(), seq, toks, false, func(_ int, l []float32) error {
		out = append([]float32(nil), l...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPlannerStories checks the tiers on stories260K (rows of 64: the
// K-quants fall back as llama.cpp does) and that lower tiers move the
// logits a little and complex not at all.
func TestPlannerStories(t *testing.T) {
	m := openModel(t, "models/stories260K/stories260K.gguf")
	p := newPlanner(t, m, DefaultConfig())
	ctx := context.Background()
	toks := []int32{1, 403, 407, 261, 378, 300}

	d, err := p.Decide(ctx, toks)
	if err != nil {
		t.Fatal(err)
	}
	if d.Tier != Simple {
		t.Errorf("a 6-token prompt is %v (%v), want simple", d.Tier, d.Score)
	}
	if got, want := d.PlanString(), "early[0-1]=Q2_K(Q4_0+F16) middle[2]=Q4_K(Q5_0+F16) late[3-4]=base"; got != want {
		t.Errorf("plan %q, want %q", got, want)
	}
	fb := strings.Join(d.Fallbacks(), "\n")
	if !strings.Contains(fb, "rows of 64 are not a multiple of 256 (Q2_K): Q4_0") ||
		!strings.Contains(fb, "rows of 172 are not a multiple of 256 (Q2_K): F16") {
		t.Errorf("fallbacks:\n%s", fb)
	}
	base := lastLogits(t, m, nil, toks)
	for _, tier := range Tiers() {
		d, err := p.DecideTier(ctx, toks, tier)
		if err != nil {
			t.Fatal(err)
		}
		kl := model.KLDivergence(base, lastLogits(t, m, d.ModelPrecision(), toks))
		t.Logf("%v: KL %.5f  %s", tier, kl, d.PlanString())
		switch {
		case tier == Complex && (kl != 0 || d.ModelPrecision().Variant(0) != nil):
			t.Errorf("complex: KL %v, want the base exactly", kl)
		case tier != Complex && (kl == 0 || kl > 0.5 || math.IsNaN(kl)):
			t.Errorf("%v: KL %v, want small but not zero", tier, kl)
		}
	}
}

// TestPlannerMoE checks a MoE model whose rows take real K-quants, and
// that the base pages of replaced tensors are released while a lower copy
// serves them and loaded while a base user is attached.
func TestPlannerMoE(t *testing.T) {
	m := openModel(t, "testdata/models/llama-moe.Q8_0.gguf")
	p := newPlanner(t, m, DefaultConfig())
	ctx := context.Background()
	toks := []int32{1, 300, 301, 302}
	simple, err := p.DecideTier(ctx, toks, Simple)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := simple.PlanString(), "early[0]=Q2_K late[1]=base"; got != want {
		t.Errorf("plan %q, want %q", got, want)
	}
	c := simple.Layers[0].Copy
	if c == nil || c.Variant == nil || len(c.Types()) != 1 || c.Types()[0] != gguf.TypeQ2_K {
		t.Fatalf("layer 0 copy: %+v", c)
	}
	if c.Bytes*3 > c.BaseBytes {
		t.Errorf("Q2_K copy %d bytes of a %d-byte Q8_0 base", c.Bytes, c.BaseBytes)
	}
	complexD, _ := p.DecideTier(ctx, toks, Complex)

	a, _ := m.NewSequence(16, model.KVF32)
	b, _ := m.NewSequence(16, model.KVF32)
	a.SetPrecision(simple.ModelPrecision())
	if got := p.ReleasedBytes(); got != c.BaseBytes {
		t.Errorf("simple attached: %d bytes released, want %d", got, c.BaseBytes)
	}
	b.SetPrecision(complexD.ModelPrecision())
	if got := p.ReleasedBytes(); got != 0 {
		t.Errorf("complex attached too: %d bytes released, want 0", got)
	}
	b.SetPrecision(nil)
	if got := p.ReleasedBytes(); got != c.BaseBytes {
		t.Errorf("complex detached: %d bytes released, want %d", got, c.BaseBytes)
	}
	if _, errs, err := p.pages.stats(); errs != 0 {
		t.Errorf("%d advice errors, last %v", errs, err)
	}

	base := lastLogits(t, m, nil, toks)
	kl := model.KLDivergence(base, lastLogits(t, m, simple.ModelPrecision(), toks))
	t.Logf("simple: KL %.5f", kl)
	if kl == 0 || kl > 1 {
		t.Errorf("simple KL %v", kl)
	}
	a.SetPrecision(nil)
}

// TestSidecar checks that copies written as sidecar files are reused by a
// later planner and give the same logits as copies in RAM.
func TestSidecar(t *testing.T) {
	m := openModel(t, "models/stories260K/stories260K.gguf")
	ctx := context.Background()
	toks := []int32{1, 403, 407}
	ram, _ := newPlanner(t, m, DefaultConfig()).DecideTier(ctx, toks, Simple)
	want := lastLogits(t, m, ram.ModelPrecision(), toks)

	cfg := DefaultConfig()
	cfg.Cache = t.TempDir()
	for run, reused := range []bool{false, true} {
		p := newPlanner(t, m, cfg)
		d, err := p.DecideTier(ctx, toks, Simple)
		if err != nil {
			t.Fatal(err)
		}
		c := d.Layers[0].Copy
		if c.Reused != reused || filepath.Dir(c.Sidecar) != cfg.Cache {
			t.Errorf("run %d: sidecar %s reused %v, want reused %v", run, c.Sidecar, c.Reused, reused)
		}
		got := lastLogits(t, m, d.ModelPrecision(), toks)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("run %d: logit %d %v from the sidecar, %v from RAM", run, i, got[i], want[i])
			}
		}
		p.Close()
	}
}

// mappedPages counts the pages of data mapped into this process
// (/proc/self/pagemap's present bit), or -1 when pagemap is unreadable.
func mappedPages(t *testing.T, data []byte) int {
	t.Helper()
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return -1
	}
	defer pm.Close()
	ps := os.Getpagesize()
	first := uintptr(unsafe.Pointer(unsafe.SliceData(data))) / uintptr(ps)
	last := (uintptr(unsafe.Pointer(unsafe.SliceData(data))) + uintptr(len(data)) - 1) / uintptr(ps)
	buf := make([]byte, 8*(last-first+1))
	if _, err := pm.ReadAt(buf, int64(first)*8); err != nil {
		return -1
	}
	n := 0
	for i := 0; i < len(buf); i += 8 {
		if buf[i+7]&0x80 != 0 {
			n++
		}
	}
	return n
}

// TestReleasedPagesStay checks that a layer served by its copy reads
// nothing of the base's pages: after a forward pass the released tensors
// of layer 0 are still unmapped. (Reading the base's norm vectors, which
// sit between the big tensors, mapped most of them back: the kernel maps
// the neighbourhood of a fault.) The model is a small Kimi-K2-shaped
// synthetic one with tensors large enough to tell.
func TestReleasedPagesStay(t *testing.T) {
	c, err := synth.Preset("kimi-k2-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.Experts, c.Vocab = 2, 256, 16, 512
	path := filepath.Join(t.TempDir(), "kimi.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 1}, path); err != nil {
		t.Fatal(err)
	}
	m := experttest.OpenModel(t, path)
	p := newPlanner(t, m, DefaultConfig())
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306}
	d, err := p.DecideTier(context.Background(), toks, Simple)
	if err != nil {
		t.Fatal(err)
	}
	lastLogits(t, m, d.ModelPrecision(), toks)
	mapped, total := 0, 0
	for _, tc := range d.Layers[0].Copy.Tensors {
		bt, _ := m.File.Tensor(tc.Name)
		n := mappedPages(t, bt.Data)
		if n < 0 {
			t.Skip("/proc/self/pagemap is not readable here")
		}
		mapped += n
		total += len(bt.Data) / os.Getpagesize()
	}
	// The kernel maps the neighbourhood of a fault (fault-around, whole
	// large folios of the page cache), so reading layer 1's base tensors
	// maps back the end of layer 0's last tensor: about 200 of the 1670
	// pages here. Reading the base's norms mapped back over 700.
	if mapped > total/4 {
		t.Errorf("%d of layer 0's %d released pages are mapped after a pass with its copy", mapped, total)
	}
}
