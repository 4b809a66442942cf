package tokenizer

import "strings"

// spmLess orders SPM bigrams: highest score first, then leftmost.
func spmLess(a, b *bigram) bool {
	return a.score > b.score || a.score == b.score && a.left < b.left
}

// spmSpace is U+2581, SentencePiece's visible space.
const spmSpace = "\u2581"

// spmSplitsAtSpace reports whether no token has a ▁ that follows
// something other than ▁ (true of SentencePiece vocabularies trained to
// split by whitespace, like Llama 2's). Then no merge can cross a point
// where a ▁ follows another character, and the text can be merged in
// pieces cut at those points: the same merges happen, in the same
// relative order, but each heap stays small.
func spmSplitsAtSpace(texts []string) bool {
	for _, s := range texts {
		for k := strings.Index(s, spmSpace); k >= 0; {
			if k > 0 && !strings.HasSuffix(s[:k], spmSpace) {
				return false
			}
			next := strings.Index(s[k+len(spmSpace):], spmSpace)
			if next < 0 {
				break
			}
			k += len(spmSpace) + next
		}
	}
	return true
}

// encodeSPM appends the tokens of text (spaces already escaped to U+2581)
// using llama.cpp's SentencePiece merge (llm_tokenizer_spm_session): start
// from UTF-8 characters, repeatedly join the adjacent pair whose
// concatenation is the token with the highest score (the leftmost on a
// tie), and emit symbols that are no token as byte tokens.
func (t *Tokenizer) encodeSPM(e *encoder, text []byte, out []int32) []int32 {
	for start := 0; start < len(text); {
		// The piece runs to the next cut (symbol boundaries decide where
		// a cut may fall, so step by characters).
		end := start + min(utf8Len(text[start]), len(text)-start)
		if t.spmSplitAtSpace {
			for end < len(text) && !isSPMCut(text, end) {
				end += min(utf8Len(text[end]), len(text)-end)
			}
		} else {
			end = len(text)
		}
		// A piece cut at spaces is merged on its own, so its tokens can be
		// cached like BPE words.
		seg := text[start:end]
		cached := t.spmSplitAtSpace && len(seg) <= maxCachedWord
		if cached {
			if ids, ok := e.cache.get(seg); ok {
				out = append(out, ids...)
				start = end
				continue
			}
		}
		syms := e.syms[:0]
		for off := start; off < end; {
			n := min(utf8Len(text[off]), end-off)
			i := int32(len(syms))
			syms = append(syms, symbol{start: int32(off), n: int32(n), prev: i - 1, next: i + 1})
			off += n
		}
		syms[len(syms)-1].next = -1
		e.syms = syms
		n := len(out)
		out = t.mergeSPM(e, text, syms, out)
		if cached {
			e.cache.put(seg, out[n:])
		}
		start = end
	}
	return out
}

// isSPMCut reports whether a ▁ starts at off after a character that is
// not ▁.
func isSPMCut(text []byte, off int) bool {
	return off >= 3 && string(text[off:min(off+3, len(text))]) == spmSpace && string(text[off-3:off]) != spmSpace
}

func (t *Tokenizer) mergeSPM(e *encoder, text []byte, syms []symbol, out []int32) []int32 {
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
