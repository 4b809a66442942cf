package gguf

import "testing"

func TestBlockOf(t *testing.T) {
	for _, c := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"blk.0.attn_q.weight", 0, true},
		{"blk.61.ffn_gate_exps.weight", 61, true},
		{"token_embd.weight", 0, false},
		{"blk..attn_q.weight", 0, false},
		{"blk.-1.attn_q.weight", 0, false},
		{"blk.x.attn_q.weight", 0, false},
		{"blk.7", 0, false},
	} {
		n, ok := BlockOf(c.name)
		if n != c.n || ok != c.ok {
			t.Errorf("BlockOf(%q) = %d, %v; want %d, %v", c.name, n, ok, c.n, c.ok)
		}
	}
}
