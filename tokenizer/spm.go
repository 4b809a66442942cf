package tokenizer

// spmLess orders SPM bigrams: highest score first, then leftmost.
func spmLess(a, b *bigram) bool {
	return a.score > b.score || a.score == b.score && a.left < b.left
}

// encodeSPM appends the tokens of text (spaces already escaped to U+2581)
// using llama.cpp's SentencePiece merge (llm_tokenizer_spm_session): start
// from UTF-8 characters, repeatedly join the adjacent pair whose
// concatenation is the token with the highest score, and emit symbols that
// are no token as byte tokens.
func (t *Tokenizer) encodeSPM(e *encoder, text []byte, out []int32) []int32 {
	if len(text) == 0 {
		return out
	}
	syms := e.syms[:0]
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		i := int32(len(syms))
		syms = append(syms, symbol{start: int32(off), n: int32(n), prev: i - 1, next: i + 1})
		off += n
	}
	syms[len(syms)-1].next = -1
	h := &e.heap
	h.items, h.less = h.items[:0], spmLess
	for i := 1; i < len(syms); i++ {
		t.addSPMBigram(e, text, syms, int32(i-1), int32(i))
	}
	for len(h.items) > 0 {
		b := h.pop()
		e.work++
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		t.addSPMBigram(e, text, syms, l.prev, b.left)
		t.addSPMBigram(e, text, syms, b.left, l.next)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		s := syms[i]
		piece := text[s.start : s.start+s.n]
		if id, ok := t.ids[string(piece)]; ok {
			out = append(out, id)
			continue
		}
		// Every merged symbol is a token, so this is one character
		// without a token: byte fallback.
		for _, b := range piece {
			id := t.spmByteToken[b]
			if id == Null {
				id = t.special.unk // llama.cpp throws here (vocab without byte tokens)
			}
			out = append(out, id)
		}
	}
	e.syms = syms
	return out
}

func (t *Tokenizer) addSPMBigram(e *encoder, text []byte, syms []symbol, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	start, size := syms[left].start, syms[left].n+syms[right].n
	id, ok := t.ids[string(text[start:start+size])]
	if !ok {
		return
	}
	e.work++
	e.heap.push(bigram{score: t.scores[id], left: left, right: right, size: size})
}
