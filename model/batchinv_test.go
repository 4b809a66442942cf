package model

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
)

// invSeq is one sequence of a batched run (runMixed): a prompt, then gen
// greedy tokens, joining the batch at step start; with last, only the
// last prompt position's logits are asked for (so the last layer's FFN
// runs on fewer rows than the batch, as in the scheduler).
type invSeq struct {
	prompt []int32
	gen    int
	start  int
	last   bool

	seq    *Sequence
	fed    int
	next   int32
	logits [][]float32 // one row per evaluated position
	toks   []int32     // generated
}

func (s *invSeq) done() bool { return len(s.toks) >= s.gen }

// runMixed evaluates seqs together as the scheduler does: each step holds
// one decode token of every generating sequence, then prompt chunks up to
// maxBatch tokens. Every position's logits are kept.
func runMixed(t testing.TB, m *Model, kv KVType, maxBatch int, seqs []*invSeq) {
	t.Helper()
	r := m.NewRunner(Options{Threads: 2, MaxBatch: maxBatch})
	defer r.Close()
	for _, s := range seqs {
		seq, err := m.NewSequence(len(s.prompt)+s.gen+1, kv)
		if err != nil {
			t.Fatal(err)
		}
		s.seq, s.fed, s.logits, s.toks = seq, 0, nil, nil
	}
	var b Batch
	var owner []*invSeq
	for step := 0; ; step++ {
		b.Reset()
		owner = owner[:0]
		active := false
		for _, s := range seqs {
			if step < s.start || s.done() || s.fed < len(s.prompt) {
				active = active || (!s.done() && step < s.start)
				continue
			}
			b.Add(s.seq, s.next, len(s.prompt)+len(s.toks)-1, true)
			owner = append(owner, s)
		}
		for _, s := range seqs {
			if step < s.start || s.fed == len(s.prompt) {
				continue
			}
			n := min(maxBatch-len(b.Tokens), len(s.prompt)-s.fed)
			for k := 0; k < n; k++ {
				want := !s.last || s.fed == len(s.prompt)-1
				b.Add(s.seq, s.prompt[s.fed], s.fed, want)
				if want {
					owner = append(owner, s)
				}
				s.fed++
			}
		}
		if len(b.Tokens) == 0 {
			if active {
				continue
			}
			return
		}
		logits, err := r.Forward(context.Background(), &b)
		if err != nil {
			t.Fatal(err)
		}
		v := m.Config.Vocab
		for i, s := range owner {
			row := append([]float32(nil), logits[i*v:(i+1)*v]...)
			s.logits = append(s.logits, row)
			if (s.last || len(s.logits) >= len(s.prompt)) && s.fed == len(s.prompt) && !s.done() {
				s.next = int32(argmax(row))
				s.toks = append(s.toks, s.next)
			}
		}
	}
}

// sameBits reports the first position and logit where got and want differ
// in their float32 bits.
func sameBits(got, want [][]float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d positions, want %d", len(got), len(want))
	}
	for p := range want {
		for j := range want[p] {
			if math.Float32bits(got[p][j]) != math.Float32bits(want[p][j]) {
				return fmt.Errorf("position %d logit %d: %v, alone %v", p, j, got[p][j], want[p][j])
			}
		}
	}
	return nil
}

// invModels cover the kernels whose choice llama.cpp makes by the number
// of tokens in a product: F32/F16/BF16 (tinyBLAS), IQ4_NL and the IQ
// types (batched dots), Q4_K/Q6_K (AMX tiles where the CPU has them,
// 256-wide rows), dense, MoE and MLA attention, both cache types.
var invModels = []struct {
	rel string
	kv  KVType
}{
	{"models/stories260K/stories260K.gguf", KVF32},
	{"models/stories260K/stories260K-F16.gguf", KVF16},
	{"models/stories260K/stories260K-BF16.gguf", KVF32},
	{"models/stories260K/stories260K-IQ4_NL.gguf", KVF16},
	{"testdata/models/llama-dense.Q4_K_M.gguf", KVF16},
	{"testdata/models/llama-dense.IQ2_XXS-imat1.gguf", KVF32},
	{"testdata/models/qwen3moe-small.Q4_K_M.gguf", KVF16},
	{"testdata/models/qwen3moe-small.F32.gguf", KVF32},
	{"testdata/models/deepseek2-v3.F16.gguf", KVF16},
	{"testdata/models/deepseek2-384.Q6_K.gguf", KVF32},
}

// TestBatchInvariance checks the default mode's promise: a sequence's
// logits at every position (float32 bits) and its greedy tokens are the
// same alone and batched with 1 to 7 other sequences of different lengths
// (decoding or prefilling in the same Forward), and whatever the prompt
// chunk (MaxBatch 1, 7, 64, 512).
func TestBatchInvariance(t *testing.T) {
	kernels.SetBatchInvariant(true)
	defer kernels.SetBatchInvariant(false)
	for _, tc := range invModels {
		t.Run(filepath.Base(tc.rel), func(t *testing.T) {
			m := openModel(t, testenv.Shared(t, tc.rel))
			vocab := int32(m.Config.Vocab)
			tok := func(i int) int32 { return 1 + int32(i*7919)%(vocab-1) }
			mk := func(n, gen, start, salt int) *invSeq {
				p := make([]int32, n)
				for i := range p {
					p[i] = tok(i*3 + salt)
				}
				return &invSeq{prompt: p, gen: gen, start: start}
			}
			const promptLen, gen = 24, 10
			want := mk(promptLen, gen, 0, 0)
			runMixed(t, m, tc.kv, 512, []*invSeq{want})
			for _, mb := range []int{1, 7, 64} {
				got := mk(promptLen, gen, 0, 0)
				runMixed(t, m, tc.kv, mb, []*invSeq{got})
				if err := sameBits(got.logits, want.logits); err != nil {
					t.Errorf("alone, batch %d: %v", mb, err)
				}
			}
			for others := 1; others <= 7; others++ {
				mb := []int{7, 64, 512}[others%3]
				seqs := []*invSeq{}
				for k := 0; k < others; k++ {
					// Lengths 3..30, joining before, with and after the
					// target so it shares steps with prompt chunks and
					// decode tokens.
					o := mk(3+(k*11)%28, 2+k%5, k%3, 100*(k+1))
					o.last = k%2 == 1
					seqs = append(seqs, o)
				}
				got := mk(promptLen, gen, 1, 0)
				seqs = append(seqs[:others/2], append([]*invSeq{got}, seqs[others/2:]...)...)
				runMixed(t, m, tc.kv, max(mb, len(seqs)), seqs)
				if err := sameBits(got.logits, want.logits); err != nil {
					t.Errorf("with %d others, batch %d: %v", others, mb, err)
				}
				for i := range want.toks {
					if got.toks[i] != want.toks[i] {
						t.Errorf("with %d others: token %d is %d, alone %d", others, i, got.toks[i], want.toks[i])
						break
					}
				}
			}
		})
	}
}
