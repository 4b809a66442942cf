package model

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// TestKVF16Bits checks the F16 KV cache path (llama.cpp's default) against
// llama.cpp bit for bit: the SHA-256 of the float32 logits (every position,
// little endian) that llamaref printed with --kv f16 --no-repack, in batch
// mode (the whole prompt in one decode) and incremental mode (one token per
// decode).
func TestKVF16Bits(t *testing.T) {
	spm := []int32{1, 369, 720, 753, 450, 719, 795, 336, 778, 763, 710, 723, 335, 814, 461, 825, 335, 779, 790}
	stories := []int32{1, 291, 410, 456, 425, 417, 340, 268, 420, 327, 416, 272, 414, 444, 410, 449, 425, 423,
		427, 419, 334, 330, 265, 278, 412, 451, 422, 400, 428, 426, 403, 407, 261, 378, 383, 286, 261, 376, 284,
		414, 418, 411, 421}
	kimi := []int32{688, 285, 596, 615, 369, 595, 651, 259, 635, 367, 46, 32, 418, 599, 258, 669, 380, 678, 258, 636, 647}
	models := testenv.Shared(t, "testdata/models")
	storiesDir := testenv.Shared(t, "models/stories260K")
	for _, c := range []struct {
		path         string
		tokens       []int32
		batch, incre string
	}{
		{filepath.Join(models, "llama-dense.Q8_0.gguf"), spm,
			"4535ace881d4839f9cc9c5f29072dac0c36192e12b8ac21793a781d9ec304733",
			"4535ace881d4839f9cc9c5f29072dac0c36192e12b8ac21793a781d9ec304733"},
		{filepath.Join(models, "llama-dense.F32.gguf"), spm,
			"93ad378d7a13441a7d5ca81a677c57e4c0db6f1d4cb3da6ee3e77a6466b3cb03",
			"aafc69a5b1c844ffdda6b1db8142025b733504db39c757fed466b0cd37453bdf"},
		{filepath.Join(models, "llama-dense.Q4_K_M.gguf"), spm,
			"0cae0941017de189a54ac094c38605a56d76fa71b9b9bff60e25950f893b53d9",
			"0cae0941017de189a54ac094c38605a56d76fa71b9b9bff60e25950f893b53d9"},
		{filepath.Join(models, "deepseek2-384.Q8_0.gguf"), kimi, // MLA, MoE
			"44969a264f9d740bb82c657980928ae460a467fbe6c65b455a8081b4f05ff00e",
			"44969a264f9d740bb82c657980928ae460a467fbe6c65b455a8081b4f05ff00e"},
		{filepath.Join(models, "qwen3moe-small.Q8_0.gguf"), kimi[1:], // neox RoPE, q/k norm, MoE
			"a8359ba0a967876c9b2b92c1ef2917f4c12120743530781e9e2e0e7f8be05b1f",
			"a8359ba0a967876c9b2b92c1ef2917f4c12120743530781e9e2e0e7f8be05b1f"},
		{filepath.Join(storiesDir, "stories260K.gguf"), stories,
			"d7c771f9a620f68de2253c471776595dd67f3e548eeab6fbb73924388a157c3c",
			"3b7320e287fc351d3327409ad8179e602800903599be7cd5ef6f50f3960c27bc"},
		{filepath.Join(storiesDir, "stories260K-Q4_0.gguf"), stories,
			"212b5c1a893dd2a21c92254312a899487984049e13ae64dc959b773dc63dea1b",
			"212b5c1a893dd2a21c92254312a899487984049e13ae64dc959b773dc63dea1b"},
	} {
		m := openModel(t, c.path)
		name := filepath.Base(c.path)
		if h := logitsHash(evalPrompt(t, m, c.tokens, KVF16)); h != c.batch {
			t.Errorf("%s batch: logits sha256 %s, llama.cpp %s", name, h, c.batch)
		}
		r := m.NewRunner(Options{Threads: 2, MaxBatch: 1})
		seq, err := m.NewSequence(512, KVF16)
		if err != nil {
			t.Fatal(err)
		}
		var rows [][]float32
		err = r.Eval(context.Background(), seq, c.tokens, true, func(_ int, l []float32) error {
			rows = append(rows, append([]float32(nil), l...))
			return nil
		})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if h := logitsHash(rows); h != c.incre {
			t.Errorf("%s incremental: logits sha256 %s, llama.cpp %s", name, h, c.incre)
		}
	}
}

func logitsHash(rows [][]float32) string {
	h := sha256.New()
	var b [4]byte
	for _, row := range rows {
		for _, v := range row {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			h.Write(b[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
