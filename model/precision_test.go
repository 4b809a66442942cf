package model

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
)

// overFile writes a GGUF holding the matrices of the given layers of m
// (2-D and 3-D tensors), converted to typ (0: the base bytes as they are),
// and parses it.
func overFile(t testing.TB, m *Model, layers []int, typ gguf.Type) *gguf.File {
	t.Helper()
	var specs []gguf.TensorSpec
	var data [][]byte
	for i := range m.File.Tensors {
		bt := &m.File.Tensors[i]
		l, ok := layerOf(bt.Name)
		if !ok || len(bt.Dims) < 2 || strings.Contains(bt.Name, "gate_inp") {
			continue
		}
		keep := false
		for _, x := range layers {
			keep = keep || x == l
		}
		if !keep {
			continue
		}
		if typ == 0 {
			specs = append(specs, gguf.TensorSpec{Name: bt.Name, Type: bt.Type, Dims: bt.Dims})
			data = append(data, bt.Data)
			continue
		}
		cols, rows := int(bt.Dims[0]), int(bt.Rows())
		rb, err := typ.RowBytes(cols)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := kernels.Lookup(typ)
		row := make([]float32, cols)
		out := make([]byte, rows*rb)
		for r := 0; r < rows; r++ {
			if err := kernels.DequantizeRow(bt.Type, row, bt.Data[r*bt.RowBytes():(r+1)*bt.RowBytes()]); err != nil {
				t.Fatal(err)
			}
			f.Quantize(out[r*rb:(r+1)*rb], row, nil)
		}
		specs = append(specs, gguf.TensorSpec{Name: bt.Name, Type: typ, Dims: bt.Dims})
		data = append(data, out)
	}
	var buf bytes.Buffer
	w, err := gguf.NewWriter(&buf, []gguf.KV{{Key: gguf.KeyArchitecture, Value: gguf.MustValue(m.Config.Arch)}}, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		if err := w.WriteTensor(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func precisionOver(t testing.TB, m *Model, layers []int, typ gguf.Type) *Precision {
	t.Helper()
	vs, err := m.Variants(overFile(t, m, layers, typ))
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(layers) {
		t.Fatalf("%d variants for layers %v", len(vs), layers)
	}
	p, err := m.NewPrecision(typ.String(), vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// evalAlone returns the logits of every position of toks evaluated alone
// with precision p.
func evalAlone(t testing.TB, m *Model, p *Precision, toks []int32) [][]float32 {
	t.Helper()
	r := m.NewRunner(Options{Threads: 2, MaxBatch: 16})
	defer r.Close()
	seq, _ := m.NewSequence(64, KVF32)
	seq.SetPrecision(p)
	var out [][]float32
	err := r.Eval(context.Background(), seq, toks, true, func(_ int, l []float32) error {
		out = append(out, append([]float32(nil), l...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var precisionModels = []string{"models/stories260K/stories260K.gguf", "testdata/models/llama-moe.Q8_0.gguf", "testdata/models/deepseek2-384.Q8_0.gguf"}

// TestVariantSameBytes checks that a variant holding the base's own bytes
// gives the base's logits bit for bit (dense and MoE: the MoE variant's
// experts run on a backend over the variant's file).
func TestVariantSameBytes(t *testing.T) {
	for _, rel := range precisionModels {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			m := openModel(t, testenv.Shared(t, rel))
			toks := []int32{1, 300, 301, 302, 303, 304}
			base := evalAlone(t, m, nil, toks)
			p := precisionOver(t, m, []int{0, m.Config.Layers - 1}, 0)
			got := evalAlone(t, m, p, toks)
			for i := range base {
				for j := range base[i] {
					if base[i][j] != got[i][j] {
						t.Fatalf("position %d logit %d: %v with the same-bytes variant, %v base", i, j, got[i][j], base[i][j])
					}
				}
			}
		})
	}
}

// TestMixedBatch checks that sequences with different precisions in one
// Forward each get what they get alone, and that the lower precision
// changes the logits.
func TestMixedBatch(t *testing.T) {
	for _, rel := range precisionModels {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			m := openModel(t, testenv.Shared(t, rel))
			lowType := gguf.TypeF16 // below F32
			if o, _ := m.File.Tensor("blk.0.attn_output.weight"); o.Type != gguf.TypeF32 {
				lowType = gguf.TypeQ4_0 // below Q8_0
			}
			low := precisionOver(t, m, []int{0}, lowType)
			a := []int32{1, 300, 301, 302}
			b := []int32{1, 310, 311}
			wantA := evalAlone(t, m, low, a)
			wantB := evalAlone(t, m, nil, b)
			baseA := evalAlone(t, m, nil, a)
			if wantA[3][5] == baseA[3][5] && wantA[3][6] == baseA[3][6] {
				t.Fatalf("the %v variant gives the base logits", lowType)
			}

			r := m.NewRunner(Options{Threads: 2, MaxBatch: 16})
			defer r.Close()
			sa, _ := m.NewSequence(64, KVF32)
			sb, _ := m.NewSequence(64, KVF32)
			sa.SetPrecision(low)
			var bt Batch
			// Interleave the two prompts in one batch.
			for i := 0; i < 4; i++ {
				bt.Add(sa, a[i], i, true)
				if i < 3 {
					bt.Add(sb, b[i], i, true)
				}
			}
			logits, err := r.Forward(context.Background(), &bt)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Config.Vocab
			row := 0
			for i := 0; i < 4; i++ {
				checkRow(t, "a", i, logits[row*v:(row+1)*v], wantA[i])
				row++
				if i < 3 {
					checkRow(t, "b", i, logits[row*v:(row+1)*v], wantB[i])
					row++
				}
			}
		})
	}
}

func checkRow(t *testing.T, seq string, pos int, got, want []float32) {
	t.Helper()
	for j := range want {
		if got[j] != want[j] {
			t.Fatalf("sequence %s position %d logit %d: %v in the mixed batch, %v alone", seq, pos, j, got[j], want[j])
		}
	}
}

// TestDecodeAllocsPrecision checks that decode steps allocate nothing
// with per-sequence precision: one sequence, and two of different
// precision in one batch.
func TestDecodeAllocsPrecision(t *testing.T) {
	for _, rel := range precisionModels {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			m := openModel(t, testenv.Shared(t, rel))
			low := precisionOver(t, m, []int{0}, 0)
			r := m.NewRunner(Options{Threads: 2, MaxBatch: 8})
			defer r.Close()
			sa, _ := m.NewSequence(256, KVF16)
			sb, _ := m.NewSequence(256, KVF16)
			sa.SetPrecision(low)
			ctx := context.Background()
			var b Batch
			for _, mixed := range []bool{false, true} {
				step := func() {
					b.Reset()
					b.Add(sa, 300, sa.Len, true)
					if mixed {
						b.Add(sb, 301, sb.Len, true)
					}
					if _, err := r.Forward(ctx, &b); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < 3; i++ {
					step()
				}
				if n := testing.AllocsPerRun(30, step); n != 0 {
					t.Errorf("mixed %v: %v allocations per decode step", mixed, n)
				}
			}
		})
	}
}
