package experts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/ggmlfp"
	"github.com/inference-x/inference-x/kernels"
)

// layerSpec describes one MoE layer of a test file.
type layerSpec struct {
	gate, up, down gguf.Type
}

// dense marks a layer without experts in testFile.
var dense = layerSpec{gate: gguf.TypeCount}

// testFile writes a GGUF with expert tensors for the given layers (index
// = layer; dense leaves the layer without experts) and random weights.
func testFile(t testing.TB, embd, ff, n int, layers []layerSpec) *gguf.File {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	var specs []gguf.TensorSpec
	var data [][]byte
	add := func(name string, typ gguf.Type, cols, rows int) {
		f, err := kernels.Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := typ.RowBytes(cols)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, rb*rows*n)
		row := make([]float32, cols)
		for r := 0; r < rows*n; r++ {
			for i := range row {
				row[i] = float32(rng.NormFloat64() / math.Sqrt(float64(cols)))
			}
			f.Quantize(b[r*rb:(r+1)*rb], row, nil)
		}
		specs = append(specs, gguf.TensorSpec{Name: name, Type: typ, Dims: []int64{int64(cols), int64(rows), int64(n)}})
		data = append(data, b)
	}
	for l, s := range layers {
		if s == dense {
			specs = append(specs, gguf.TensorSpec{Name: fmt.Sprintf("blk.%d.ffn_norm.weight", l), Type: gguf.TypeF32, Dims: []int64{int64(embd)}})
			data = append(data, make([]byte, 4*embd))
			continue
		}
		g, u, d := expertTensors(l)
		add(g, s.gate, embd, ff)
		add(u, s.up, embd, ff)
		add(d, s.down, ff, embd)
	}
	p := filepath.Join(t.TempDir(), "experts.gguf")
	kvs := []gguf.KV{{Key: "general.architecture", Value: gguf.MustValue("test")}}
	if err := gguf.WriteFile(p, kvs, specs, data); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// testBatch makes n rows routed to k distinct experts each.
func testBatch(rng *rand.Rand, n, k, embd, nExp int) *Batch {
	b := &Batch{N: n, K: k, Embd: embd, X: make([]float32, n*embd)}
	for i := range b.X {
		b.X[i] = float32(rng.NormFloat64())
	}
	for i := 0; i < n; i++ {
		for _, e := range rng.Perm(nExp)[:k] {
			b.Experts = append(b.Experts, int32(e))
			b.Weights = append(b.Weights, float32(rng.Float64()))
		}
	}
	return b
}

// withQ adds the rows quantized for the gate type, as the model sends them.
func withQ(t testing.TB, lc *Local, layer int, b *Batch) *Batch {
	t.Helper()
	qt, ok := needsQuant(&lc.layers[layer].gate[b.Experts[0]])
	if !ok {
		return b
	}
	c := *b
	rb := kernels.ActivationBytes(qt, b.Embd)
	c.Q, c.QType = make([]byte, b.N*rb), qt
	for i := 0; i < b.N; i++ {
		if err := kernels.QuantizeActivation(qt, c.Q[i*rb:(i+1)*rb], b.X[i*b.Embd:(i+1)*b.Embd]); err != nil {
			t.Fatal(err)
		}
	}
	return &c
}

// reference computes the batch one (row, expert) at a time, straight from
// the tensors, with the same kernels: the result must agree bit for bit.
func reference(t testing.TB, f *gguf.File, layer int, b *Batch) []float32 {
	t.Helper()
	gn, un, dn := expertTensors(layer)
	gt, _ := f.Tensor(gn)
	ut, _ := f.Tensor(un)
	dt, _ := f.Tensor(dn)
	embd, ff := int(gt.Dims[0]), int(gt.Dims[1])
	out := make([]float32, b.N*embd)
	// dot is row r of expert e of t times x; qx caches x quantized (x
	// changes only between calls with a new key).
	qx := map[gguf.Type][]byte{}
	var qxKey *float32
	dot := func(t *gguf.Tensor, e, r int, x []float32) float32 {
		fm, _ := kernels.Lookup(t.Type)
		cols := int(t.Dims[0])
		rb, _ := t.Type.RowBytes(cols)
		rows := int(t.Dims[1])
		w := t.Data[(e*rows+r)*rb : (e*rows+r+1)*rb]
		if fm.VecDot == gguf.TypeF32 || fm.Dot == nil {
			return fm.DotF32(w, x)
		}
		if qxKey != &x[0] {
			clear(qx)
			qxKey = &x[0]
		}
		q, ok := qx[fm.VecDot]
		if !ok {
			q = make([]byte, kernels.ActivationBytes(fm.VecDot, cols))
			_ = kernels.QuantizeActivation(fm.VecDot, q, x)
			qx[fm.VecDot] = q
		}
		return fm.Dot(cols, w, q)
	}
	for i := 0; i < b.N; i++ {
		x := b.X[i*embd : (i+1)*embd]
		o := out[i*embd : (i+1)*embd]
		for k := 0; k < b.K; k++ {
			e := int(b.Experts[i*b.K+k])
			h := make([]float32, ff)
			for r := range h {
				h[r] = ggmlfp.SiluInRow(dot(gt, e, r, x), r, ff) * dot(ut, e, r, x)
			}
			for r := range o {
				y := dot(dt, e, r, h) * b.Weights[i*b.K+k]
				if k == 0 {
					o[r] = y
				} else {
					o[r] += y
				}
			}
		}
	}
	return out
}

// float64Reference dequantizes the weights and computes in float64, to
// catch errors the same-kernel reference would share.
func float64Reference(f *gguf.File, layer int, b *Batch) []float64 {
	gn, un, dn := expertTensors(layer)
	deq := func(name string) ([]float32, int, int) {
		t, _ := f.Tensor(name)
		x := make([]float32, t.Elements())
		_ = kernels.DequantizeRow(t.Type, x, t.Data)
		return x, int(t.Dims[0]), int(t.Dims[1])
	}
	g, embd, ff := deq(gn)
	u, _, _ := deq(un)
	d, _, _ := deq(dn)
	out := make([]float64, b.N*embd)
	for i := 0; i < b.N; i++ {
		x := b.X[i*embd : (i+1)*embd]
		for k := 0; k < b.K; k++ {
			e := int(b.Experts[i*b.K+k])
			h := make([]float64, ff)
			for r := range h {
				var gs, us float64
				for c := range x {
					gs += float64(g[(e*ff+r)*embd+c]) * float64(x[c])
					us += float64(u[(e*ff+r)*embd+c]) * float64(x[c])
				}
				h[r] = gs / (1 + math.Exp(-gs)) * us
			}
			for r := 0; r < embd; r++ {
				var s float64
				for c := range h {
					s += float64(d[(e*embd+r)*ff+c]) * h[c]
				}
				out[i*embd+r] += s * float64(b.Weights[i*b.K+k])
			}
		}
	}
	return out
}

func TestLocalForward(t *testing.T) {
	cases := []struct {
		name      string
		embd, ff  int
		spec      layerSpec
		tolerance float64 // relative to max |out| against float64
	}{
		{"F32", 64, 32, layerSpec{gguf.TypeF32, gguf.TypeF32, gguf.TypeF32}, 1e-5},
		{"F16", 64, 32, layerSpec{gguf.TypeF16, gguf.TypeF16, gguf.TypeF16}, 3e-3},
		{"Q8_0", 64, 32, layerSpec{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}, 2e-2},
		{"Q4_0+Q8_0 down", 64, 64, layerSpec{gguf.TypeQ4_0, gguf.TypeQ4_0, gguf.TypeQ8_0}, 5e-2},
		// gate and up of different companion types (Q8_K and Q8_0).
		{"Q4_K gate, Q8_0 up, Q6_K down", 256, 256, layerSpec{gguf.TypeQ4_K, gguf.TypeQ8_0, gguf.TypeQ6_K}, 5e-2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const nExp = 8
			f := testFile(t, c.embd, c.ff, nExp, []layerSpec{dense, c.spec})
			lc, err := NewLocal(f, LocalConfig{Threads: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer lc.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			for _, n := range []int{1, 5, 40} {
				b := testBatch(rng, n, 3, c.embd, nExp)
				want := reference(t, f, 1, b)
				ref := float64Reference(f, 1, b)
				within := func(what string, got []float32) {
					t.Helper()
					var mx, diff float64
					for i, v := range ref {
						mx = max(mx, math.Abs(v))
						diff = max(diff, math.Abs(v-float64(got[i])))
					}
					if diff > c.tolerance*mx {
						t.Errorf("%d rows, %s: max |diff| %.3g from float64 > %.g x %.3g", n, what, diff, c.tolerance, mx)
					}
				}
				within("one row at a time", want)
				// Without the AMX tiles every product is Format.Dot's, bit
				// for bit; with them (K-quants, 8 or more rows per expert)
				// the blocks round differently and are held to the float64
				// tolerance.
				for _, tiles := range []bool{false, true} {
					kernels.SetTiles(tiles)
					for _, bb := range []*Batch{b, withQ(t, lc, 1, b)} {
						got := make([]float32, n*c.embd)
						if err := lc.Forward(context.Background(), 1, bb, got); err != nil {
							t.Fatal(err)
						}
						if !tiles && !slices.Equal(got, want) {
							t.Fatalf("%d rows (Q %v): differs from the one-row-at-a-time reference", n, bb.Q != nil)
						}
						within(fmt.Sprintf("tiles %v, Q %v", tiles, bb.Q != nil), got)
					}
				}
				kernels.SetTiles(true)
			}
		})
	}
}

// TestLocalUsesQ checks that the backend computes from the batch's
// quantized rows, not from X, where the weights take quantized rows.
func TestLocalUsesQ(t *testing.T) {
	f := testFile(t, 64, 32, 4, []layerSpec{{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	lc, err := NewLocal(f, LocalConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	b := withQ(t, lc, 0, testBatch(rand.New(rand.NewPCG(3, 3)), 2, 2, 64, 4))
	a := make([]float32, 2*64)
	if err := lc.Forward(context.Background(), 0, b, a); err != nil {
		t.Fatal(err)
	}
	b.X = make([]float32, len(b.X)) // X zero: only Q can give the same result
	z := make([]float32, 2*64)
	if err := lc.Forward(context.Background(), 0, b, z); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, z) {
		t.Error("the result depends on X although Q was given")
	}
}

func TestLocalSubset(t *testing.T) {
	f := testFile(t, 64, 32, 6, []layerSpec{dense, {gguf.TypeF32, gguf.TypeF32, gguf.TypeF32}, {gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	lc, err := NewLocal(f, LocalConfig{Threads: 2, Experts: map[int][]int{1: {1, 4}}})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if !lc.Holds(1, 4) || lc.Holds(1, 2) || lc.Holds(2, 1) || lc.Holds(0, 0) {
		t.Error("Holds disagrees with the configured subset")
	}
	out := make([]float32, 64)
	b := &Batch{N: 1, K: 2, Embd: 64, X: make([]float32, 64), Experts: []int32{4, 1}, Weights: []float32{0.5, 0.5}}
	if err := lc.Forward(context.Background(), 1, b, out); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		layer int
		ids   []int32
	}{{1, []int32{4, 2}}, {2, []int32{1, 4}}, {0, []int32{1, 4}}, {1, []int32{4, 6}}, {1, []int32{-1, 4}}, {7, []int32{1, 4}}} {
		b.Experts = c.ids
		if err := lc.Forward(context.Background(), c.layer, b, out); !errors.Is(err, ErrUnknownExpert) {
			t.Errorf("layer %d experts %v: %v, want ErrUnknownExpert", c.layer, c.ids, err)
		}
	}
	if _, err := NewLocal(f, LocalConfig{Experts: map[int][]int{1: {6}}}); !errors.Is(err, ErrUnknownExpert) {
		t.Errorf("expert 6 of 6: %v", err)
	}
	if _, err := NewLocal(f, LocalConfig{Experts: map[int][]int{0: {0}}}); !errors.Is(err, ErrUnknownExpert) {
		t.Errorf("dense layer 0: %v", err)
	}
}

func TestLocalBadBatch(t *testing.T) {
	f := testFile(t, 64, 32, 4, []layerSpec{{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	lc, err := NewLocal(f, LocalConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	good := func() *Batch { return testBatch(rand.New(rand.NewPCG(1, 1)), 2, 2, 64, 4) }
	out := make([]float32, 2*64)
	for name, b := range map[string]*Batch{
		"embd":    func() *Batch { b := good(); b.Embd = 32; return b }(),
		"x short": func() *Batch { b := good(); b.X = b.X[:64]; return b }(),
		"ids":     func() *Batch { b := good(); b.Experts = b.Experts[:3]; return b }(),
		"weights": func() *Batch { b := good(); b.Weights = b.Weights[:1]; return b }(),
		"q size":  func() *Batch { b := good(); b.Q, b.QType = make([]byte, 10), gguf.TypeQ8_0; return b }(),
		"k":       func() *Batch { b := good(); b.K = 0; return b }(),
	} {
		if err := lc.Forward(context.Background(), 0, b, out); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lc.Forward(ctx, 0, good(), out); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestLocalBadTensors(t *testing.T) {
	write := func(specs []gguf.TensorSpec) *gguf.File {
		var data [][]byte
		for _, s := range specs {
			n := 1
			for _, d := range s.Dims {
				n *= int(d)
			}
			data = append(data, make([]byte, 4*n))
		}
		p := filepath.Join(t.TempDir(), "bad.gguf")
		if err := gguf.WriteFile(p, nil, specs, data); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	ts := func(name string, dims ...int64) gguf.TensorSpec {
		return gguf.TensorSpec{Name: name, Type: gguf.TypeF32, Dims: dims}
	}
	for want, specs := range map[string][]gguf.TensorSpec{
		"blk.0.ffn_down_exps.weight": {ts("blk.0.ffn_gate_exps.weight", 8, 4, 2), ts("blk.0.ffn_up_exps.weight", 8, 4, 2)},
		"blk.0.ffn_up_exps.weight":   {ts("blk.0.ffn_gate_exps.weight", 8, 4, 2), ts("blk.0.ffn_up_exps.weight", 8, 4, 3), ts("blk.0.ffn_down_exps.weight", 4, 8, 2)},
		"blk.1.ffn_down_exps.weight": {ts("blk.1.ffn_gate_exps.weight", 8, 4, 2), ts("blk.1.ffn_up_exps.weight", 8, 4, 2), ts("blk.1.ffn_down_exps.weight", 8, 4, 2)},
		"blk.0.ffn_gate_exps.weight": {ts("blk.0.ffn_gate_exps.weight", 8, 8), ts("blk.0.ffn_up_exps.weight", 8, 4, 2), ts("blk.0.ffn_down_exps.weight", 4, 8, 2)},
	} {
		_, err := NewLocal(write(specs), LocalConfig{Threads: 1})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %v: want one line naming %s", err, want)
		}
	}
}

// TestLocalConcurrent runs Forward from several goroutines at once (run
// with -race) and checks each result against a serial run.
func TestLocalConcurrent(t *testing.T) {
	f := testFile(t, 64, 32, 16, []layerSpec{{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ4_0}, {gguf.TypeF32, gguf.TypeF32, gguf.TypeF32}})
	lc, err := NewLocal(f, LocalConfig{Threads: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	rng := rand.New(rand.NewPCG(5, 5))
	type job struct {
		layer int
		b     *Batch
		want  []float32
	}
	var jobs []job
	for i := 0; i < 12; i++ {
		b := testBatch(rng, 1+i%5, 4, 64, 16)
		want := make([]float32, b.N*64)
		if err := lc.Forward(context.Background(), i%2, b, want); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{i % 2, b, want})
	}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 5; r++ {
				for j := range jobs {
					jb := jobs[(j+g)%len(jobs)]
					got := make([]float32, len(jb.want))
					if err := lc.Forward(context.Background(), jb.layer, jb.b, got); err != nil {
						t.Error(err)
						return
					}
					if !slices.Equal(got, jb.want) {
						t.Error("concurrent result differs from the serial one")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestLocalAllocs(t *testing.T) {
	f := testFile(t, 64, 32, 16, []layerSpec{{gguf.TypeQ8_0, gguf.TypeQ8_0, gguf.TypeQ8_0}})
	lc, err := NewLocal(f, LocalConfig{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	b := withQ(t, lc, 0, testBatch(rand.New(rand.NewPCG(9, 9)), 3, 4, 64, 16))
	out := make([]float32, 3*64)
	ctx := context.Background()
	run := func() {
		if err := lc.Forward(ctx, 0, b, out); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per Forward", n)
	}
}
