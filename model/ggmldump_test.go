package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/inference-x/inference-x/kernels"
)

// This file checks the forward pass op by op against a dump of llama.cpp's
// graph tensors (made by a cb_eval driver outside the repository): every op
// is fed llama.cpp's own inputs and its output compared bit for bit, so a
// difference points at one op. It runs only when IX_GGML_DUMP names a dump
// and IX_GGML_MODEL the GGUF it was made from.

type dumpTensor struct {
	name string
	dec  int
	ne   [4]int
	op   int
	data []float32
}

func readDump(t testing.TB, path string) []dumpTensor {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []dumpTensor
	for o := 0; o < len(b); {
		l := int(binary.LittleEndian.Uint32(b[o:]))
		o += 4
		d := dumpTensor{name: string(b[o : o+l])}
		o += l
		d.dec = int(binary.LittleEndian.Uint32(b[o:]))
		o += 4
		n := 1
		for i := range d.ne {
			d.ne[i] = int(binary.LittleEndian.Uint64(b[o:]))
			n *= d.ne[i]
			o += 8
		}
		d.op = int(binary.LittleEndian.Uint32(b[o:]))
		o += 4
		d.data = make([]float32, n)
		for i := range d.data {
			d.data[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[o:]))
			o += 4
		}
		out = append(out, d)
	}
	return out
}

// find returns the first tensor of decode dec named name with op op (-1: any).
func findDump(ts []dumpTensor, dec int, name string, op int) *dumpTensor {
	for i := range ts {
		if ts[i].dec == dec && ts[i].name == name && (op < 0 || ts[i].op == op) {
			return &ts[i]
		}
	}
	return nil
}

type opStat struct {
	n, diff int
	maxAbs  float64
	maxUlp  int64
}

func (s *opStat) add(want, got float32) {
	s.n++
	if math.Float32bits(want) == math.Float32bits(got) || (want == 0 && got == 0) {
		return
	}
	s.diff++
	s.maxAbs = max(s.maxAbs, math.Abs(float64(want-got)))
	u := int64(math.Float32bits(want)) - int64(math.Float32bits(got))
	if u < 0 {
		u = -u
	}
	s.maxUlp = max(s.maxUlp, u)
}

func (s opStat) String() string {
	if s.diff == 0 {
		return fmt.Sprintf("exact (%d)", s.n)
	}
	return fmt.Sprintf("%d/%d differ, max|d| %.3g, max ulps %d", s.diff, s.n, s.maxAbs, s.maxUlp)
}

const (
	ggmlOpMulMat = 29
	ggmlOpRope   = 48
)

func TestGGMLDump(t *testing.T) {
	dumpPath, modelPath := os.Getenv("IX_GGML_DUMP"), os.Getenv("IX_GGML_MODEL")
	if dumpPath == "" || modelPath == "" {
		t.Skip("IX_GGML_DUMP and IX_GGML_MODEL not set")
	}
	ts := readDump(t, dumpPath)
	m := openModel(t, modelPath)
	c := &m.Config
	r := m.NewRunner(Options{Threads: 1, MaxBatch: 512})
	defer r.Close()
	for dec := 0; ; dec++ {
		emb := findDump(ts, dec, "embd", -1)
		if emb == nil {
			break
		}
		n := emb.ne[1]
		get := func(name string, op int) []float32 {
			d := findDump(ts, dec, name, op)
			if d == nil {
				t.Fatalf("decode %d: no %s", dec, name)
			}
			return d.data
		}
		cmp := func(what string, want, got []float32) {
			var s opStat
			for i := range want {
				if os.Getenv("IX_GGML_VERBOSE") != "" && math.Float32bits(want[i]) != math.Float32bits(got[i]) && s.diff < 8 {
					t.Logf("  %s[%d]: %g (%#08x), llama.cpp %g (%#08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
				s.add(want[i], got[i])
			}
			t.Logf("dec %d %-16s %v", dec, what, s)
		}
		mm := func(w *kernels.Matrix, x []float32) []float32 {
			out := make([]float32, n*w.Rows)
			r.acts.Reset(x, n, w.Cols)
			r.pool.MatMul(out, w, &r.acts)
			return out
		}
		norm := func(x, w []float32) []float32 {
			out := make([]float32, len(x))
			for i := 0; i < n; i++ {
				rmsNorm(out[i*c.Embd:(i+1)*c.Embd], x[i*c.Embd:(i+1)*c.Embd], w, c.NormEps)
			}
			return out
		}
		prev := get("embd", -1)
		for l := range m.layers {
			ly := &m.layers[l]
			a := ly.attn.(*gqa)
			sfx := fmt.Sprintf("-%d", l)
			an := get("attn_norm"+sfx, -1)
			cmp("attn_norm"+sfx, an, norm(prev, ly.attnNorm))
			q := get("Qcur"+sfx, ggmlOpMulMat)
			k := get("Kcur"+sfx, ggmlOpMulMat)
			v := get("Vcur"+sfx, ggmlOpMulMat)
			cmp("Qcur"+sfx, q, mm(a.q, an))
			cmp("Kcur"+sfx, k, mm(a.k, an))
			cmp("Vcur"+sfx, v, mm(a.v, an))
			qr := get("Qcur"+sfx, ggmlOpRope)
			kr := get("Kcur"+sfx, ggmlOpRope)
			pos0 := 0
			if dec > 0 {
				pos0 = dec // incremental dumps: one token per decode
			}
			{
				gq := append([]float32(nil), q...)
				gk := append([]float32(nil), k...)
				cos := make([]float32, a.rope.Dims/2)
				sin := make([]float32, a.rope.Dims/2)
				hd := a.headDim
				for i := 0; i < n; i++ {
					a.rope.cache(pos0+i, cos, sin)
					for h := 0; h < a.heads; h++ {
						a.rope.apply(gq[(i*a.heads+h)*hd:(i*a.heads+h+1)*hd], cos, sin)
					}
					for h := 0; h < a.kvHeads; h++ {
						a.rope.apply(gk[(i*a.kvHeads+h)*hd:(i*a.kvHeads+h+1)*hd], cos, sin)
					}
				}
				cmp("Qrope"+sfx, qr, gq)
				cmp("Krope"+sfx, kr, gk)
			}
			// Attention on llama.cpp's own cache contents: kq is
			// [head][token][kv], soft_max the same, kqv [head][token][d].
			kqD := findDump(ts, dec, "kq"+sfx, -1)
			kq := kqD.data
			nkv := kqD.ne[0]
			kc := get("cache_k_l"+fmt.Sprint(l)+" (view)", -1) // [kv][kvHeads*hd]
			vcD := findDump(ts, dec, "cache_v_l"+fmt.Sprint(l)+" (view) (permuted)", -1)
			sm := get("kq_soft_max"+sfx, -1)
			kqvD := get("kqv"+sfx, -1)
			{
				hd, vd := a.headDim, a.vHeadDim
				group := a.heads / a.kvHeads
				var sKQ, sSM, sKQV opStat
				scores := make([]float32, nkv)
				out := make([]float32, vd)
				vrow := make([]float32, vd)
				accBuf := make([]float32, 64*vd)
				for h := 0; h < a.heads; h++ {
					kh := h / group
					for i := 0; i < n; i++ {
						npos := pos0 + i + 1
						qv := qr[(i*a.heads+h)*hd : (i*a.heads+h+1)*hd]
						for j := 0; j < npos; j++ {
							kj := kc[j*a.kvHeads*hd+kh*hd : j*a.kvHeads*hd+(kh+1)*hd]
							sKQ.add(kq[(h*n+i)*nkv+j], vecDotF32(qv, kj))
						}
						// softmax from llama.cpp's kq
						for j := 0; j < npos; j++ {
							scores[j] = kq[(h*n+i)*nkv+j] * a.scale
						}
						softmaxRow(scores[:npos], nkv)
						for j := 0; j < npos; j++ {
							sSM.add(sm[(h*n+i)*nkv+j], scores[j])
						}
						// kqv from llama.cpp's probabilities and V:
						// V view (permuted) is [kvHeads][vd][nkv].
						var kqv kqvAcc
						kqv.reset(accBuf, vd, n >= 2)
						for j := 0; j < npos; j++ {
							for d := 0; d < vd; d++ {
								vrow[d] = vcD.data[(kh*vd+d)*nkv+j]
							}
							kqv.add(j, sm[(h*n+i)*nkv+j], vrow)
						}
						kqv.sum(out)
						for d := 0; d < vd; d++ {
							sKQV.add(kqvD[(h*n+i)*vd+d], out[d])
						}
					}
				}
				t.Logf("dec %d %-16s %v", dec, "kq"+sfx, sKQ)
				t.Logf("dec %d %-16s %v", dec, "softmax"+sfx, sSM)
				t.Logf("dec %d %-16s %v", dec, "kqv"+sfx, sKQV)
			}
			ko := get("kqv_out"+sfx, -1)
			ao := get("attn_out"+sfx, -1)
			cmp("attn_out"+sfx, ao, mm(a.o, ko))
			fi := get("ffn_inp"+sfx, -1)
			{
				g := append([]float32(nil), prev...)
				add(g, ao)
				cmp("ffn_inp"+sfx, fi, g)
			}
			fn := get("ffn_norm"+sfx, -1)
			cmp("ffn_norm"+sfx, fn, norm(fi, ly.ffnNorm))
			f := ly.ffn.(*denseFFN)
			gate := get("ffn_gate"+sfx, -1)
			up := get("ffn_up"+sfx, -1)
			cmp("ffn_gate"+sfx, gate, mm(f.gate, fn))
			cmp("ffn_up"+sfx, up, mm(f.up, fn))
			sw := get("ffn_swiglu"+sfx, -1)
			{
				g := append([]float32(nil), gate...)
				swigluRows(g, up, f.gate.Rows)
				cmp("ffn_swiglu"+sfx, sw, g)
			}
			fo := get("ffn_out"+sfx, -1)
			r.acts.Reset(sw, n, f.down.Cols)
			cmp("ffn_out"+sfx, fo, mm(f.down, sw))
			lo := get("l_out"+sfx, -1)
			{
				g := append([]float32(nil), fi...)
				add(g, fo)
				cmp("l_out"+sfx, lo, g)
			}
			prev = lo
		}
		rn := get("result_norm", -1)
		cmp("result_norm", rn, norm(prev, m.outputNorm))
		cmp("result_output", get("result_output", -1), mm(m.output, rn))
	}
}
