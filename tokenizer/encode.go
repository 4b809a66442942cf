package tokenizer

// encoder is the scratch state of one Encode call, pooled per Tokenizer so
// that encoding long texts reuses its buffers.
type encoder struct {
	frags, frags2 []fragment
	seen          []bool
	cp            codepoints
	words         [2][]int
	syms          []symbol
	heap          bigramHeap
	text, buf     []byte
	cache         wordCache // BPE words already merged
	// work counts merge-heap operations and pre-tokenizer steps; tests use
	// it to check that encoding stays linear in the input.
	work int
}

// maxPooledLen bounds the buffers an encoder keeps between calls (in
// elements: texts of a few MB keep their buffers).
const maxPooledLen = 1 << 22

func (e *encoder) trim() {
	if cap(e.cp.cpts) > maxPooledLen || cap(e.cp.norm) > 4*maxPooledLen {
		e.cp = codepoints{}
	}
	if cap(e.words[0]) > maxPooledLen || cap(e.words[1]) > maxPooledLen {
		e.words = [2][]int{}
	}
	if cap(e.syms) > maxPooledLen {
		e.syms = nil
	}
	if cap(e.heap.items) > maxPooledLen {
		e.heap.items = nil
	}
	if cap(e.text) > 4*maxPooledLen {
		e.text = nil
	}
	if cap(e.frags) > maxPooledLen || cap(e.frags2) > maxPooledLen {
		e.frags, e.frags2 = nil, nil
	}
	e.heap.less = nil
}

// Encode tokenizes text exactly as llama.cpp's llama_tokenize(vocab,
// text, addSpecial, parseSpecial): addSpecial adds BOS (and EOS) where the
// vocabulary asks for it; parseSpecial recognises control tokens such as
// <|im_start|> in the text (user-defined tokens are recognised always).
// Any byte sequence up to 2 GiB is accepted; malformed UTF-8 is tokenized
// as U+FFFD by BPE vocabularies and as byte tokens by SentencePiece ones.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	return t.AppendEncode(make([]int32, 0, len(text)/4+2), text, addSpecial, parseSpecial)
}

// AppendEncode is Encode appending to dst.
func (t *Tokenizer) AppendEncode(dst []int32, text string, addSpecial, parseSpecial bool) []int32 {
	e := t.scratch.Get().(*encoder)
	dst = t.encode(e, dst, text, addSpecial, parseSpecial)
	e.trim()
	t.scratch.Put(e)
	return dst
}

func (t *Tokenizer) encode(e *encoder, out []int32, text string, addSpecial, parseSpecial bool) []int32 {
	e.work = 0
	frags := t.partition(e, text, parseSpecial)
	if addSpecial && t.addBOS && t.special.bos != Null {
		out = append(out, t.special.bos)
	}
	prevSpecial := true // SPM: a space goes before the first fragment and after special tokens
	for _, f := range frags {
		if f.tok != Null {
			out = append(out, f.tok)
			prevSpecial = true
			continue
		}
		raw := text[f.start:f.end]
		if t.model == ModelSPM {
			e.text = e.text[:0]
			if t.addSpacePrefix && prevSpecial {
				e.text = append(e.text, "\u2581"...)
			}
			e.text = appendEscaped(e.text, raw)
			out = t.encodeSPM(e, e.text, out)
		} else {
			out = t.encodeBPE(e, raw, out)
		}
		prevSpecial = false
	}
	if addSpecial && t.addEOS && t.special.eos != Null {
		out = append(out, t.special.eos)
	}
	return out
}

// appendEscaped appends s with every space replaced by U+2581 (▁), as
// SentencePiece vocabularies spell it.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			dst = append(dst, "\u2581"...)
		} else {
			dst = append(dst, s[i])
		}
	}
	return dst
}

// encodeBPE pre-tokenizes text into words and merges each.
func (t *Tokenizer) encodeBPE(e *encoder, text string, out []int32) []int32 {
	c := &e.cp
	c.reset(text, t.uni)
	c.work = 0
	words := t.preTok.split(c, &e.words)
	e.work += c.work + len(c.cpts)
	start := 0
	for _, end := range words {
		out = t.bpe.encodeWord(e, t, c.norm[c.off[start]:c.off[end]], out)
		start = end
	}
	return out
}
