package model

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
)

// toKVB rewrites a split-layout deepseek2 F32 file (attn_k_b, attn_v_b,
// key/value_length_mla) into the older attn_kv_b layout llama.cpp runs as
// plain multi-head attention: the same model, so the same logits.
func toKVB(t *testing.T, e *ggufEdit, layers, heads, nope, rope, kvLora, v int) {
	for l := 0; l < layers; l++ {
		kb := e.f32(t, blk(l, "attn_k_b.weight")) // [nope, kvLora, heads]
		vb := e.f32(t, blk(l, "attn_v_b.weight")) // [kvLora, v, heads]
		kvb := make([]float32, 0, kvLora*heads*(nope+v))
		for h := 0; h < heads; h++ {
			for r := 0; r < nope; r++ { // k_nope row r = column r of k_b
				for c := 0; c < kvLora; c++ {
					kvb = append(kvb, kb[h*kvLora*nope+c*nope+r])
				}
			}
			kvb = append(kvb, vb[h*v*kvLora:(h+1)*v*kvLora]...)
		}
		e.remove(blk(l, "attn_k_b.weight"))
		e.remove(blk(l, "attn_v_b.weight"))
		e.put(blk(l, "attn_kv_b.weight"), kvb, int64(kvLora), int64(heads*(nope+v)))
	}
	e.del("deepseek2.attention.key_length_mla")
	e.del("deepseek2.attention.value_length_mla")
	e.set("deepseek2.attention.key_length", uint32(nope+rope))
	e.set("deepseek2.attention.value_length", uint32(v))
	e.set("deepseek2.attention.head_count_kv", uint32(heads))
}

// TestMLAKVBLayout checks the attn_kv_b layout against llama.cpp's logits
// for the same weights in the split layout.
func TestMLAKVBLayout(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	for _, name := range []string{"deepseek2-384", "deepseek2-v3"} {
		t.Run(name, func(t *testing.T) {
			e := readEdit(t, filepath.Join(dir, name+".F32.gguf"))
			toKVB(t, e, 2, 4, 32, 16, 64, 32)
			m := openModel(t, e.write(t, name+".kvb.gguf"))
			if len(m.layers[0].attn.(*mla).kT) != 4 {
				t.Fatal("the rewritten file did not load in the attn_kv_b layout")
			}
			for _, mode := range []string{"logits", "logits.incremental"} {
				ref := readRef(t, filepath.Join(dir, name+".F32."+mode+".json"))
				var got [][]float32
				if mode == "logits" {
					got = evalPrompt(t, m, ref.Tokens, KVF32)
				} else {
					got = evalIncremental(t, m, ref.Tokens, KVF32)
				}
				compareLogits(t, ref, got, true)
			}
		})
	}
}

// TestMoEBadTensors checks that a missing or mis-shaped MoE or MLA tensor
// fails Load with one line naming it.
func TestMoEBadTensors(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	cases := []struct {
		file, tensor string
		edit         func(e *ggufEdit, name string)
	}{
		{"deepseek2-384.F32", "blk.1.ffn_gate_exps.weight", missing},
		{"deepseek2-384.F32", "blk.1.ffn_down_exps.weight", reshaped(32, 64, 383)},
		{"deepseek2-384.F32", "blk.1.ffn_up_exps.weight", reshaped(64, 32*384)},
		{"deepseek2-384.F32", "blk.1.ffn_gate_inp.weight", missing},
		{"deepseek2-384.F32", "blk.1.ffn_up_shexp.weight", missing},
		{"deepseek2-384.F32", "blk.0.attn_k_b.weight", reshaped(64, 32, 4)},
		{"deepseek2-384.F32", "blk.1.attn_v_b.weight", missing},
		{"deepseek2-384.F32", "blk.0.attn_kv_a_mqa.weight", reshaped(64, 64)},
		{"deepseek2-384.F32", "blk.0.attn_q_b.weight", missing},
		{"deepseek2-v3.F32", "blk.1.exp_probs_b.bias", reshaped(32)},
		{"qwen3moe-small.F32", "blk.0.ffn_up_exps.weight", missing},
		{"qwen3moe-small.F32", "blk.1.ffn_gate_exps.weight", reshaped(64, 64, 8)},
		{"llama-moe.Q8_0", "blk.1.ffn_down_exps.weight", missing},
	}
	for _, c := range cases {
		t.Run(c.file+"/"+c.tensor, func(t *testing.T) {
			e := readEdit(t, filepath.Join(dir, c.file+".gguf"))
			c.edit(e, c.tensor)
			_, err := loadFile(t, e.write(t, "bad.gguf"))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.tensor) || strings.Contains(msg, "\n") || !errors.Is(err, ErrTensor) {
				t.Errorf("error %q: want one line naming %s, wrapping ErrTensor", msg, c.tensor)
			}
			t.Log(msg)
		})
	}
}

func missing(e *ggufEdit, name string) { e.remove(name) }

// reshaped changes a tensor's dimensions, keeping (or trimming) its data.
func reshaped(dims ...int64) func(e *ggufEdit, name string) {
	return func(e *ggufEdit, name string) {
		i := e.tensor(name)
		if i < 0 {
			panic(fmt.Sprintf("no tensor %s", name))
		}
		typ := e.specs[i].Type
		n := int64(1)
		for _, d := range dims {
			n *= d
		}
		n = n / int64(typ.BlockSize()) * int64(typ.BlockBytes())
		if n > int64(len(e.data[i])) {
			e.data[i] = append(e.data[i], make([]byte, n-int64(len(e.data[i])))...)
		}
		e.data[i] = e.data[i][:n]
		e.specs[i].Dims = dims
	}
}

// loadFile opens and loads the GGUF at path, returning Load's error.
func loadFile(t testing.TB, path string) (*Model, error) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return Load(f)
}
