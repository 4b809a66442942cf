package tokenizer

// The splitters in this file follow llama.cpp's hand-written matchers in
// unicode.cpp (unicode_regex_split_custom_*), which differ from the
// regexes they stand for in a few corners; the corners are kept.

// foldASCII lowers A-Z. It is all of llama.cpp's unicode_tolower that
// can matter here: the only non-ASCII code points lowering to ASCII are
// U+0130 (to 'i') and U+212A (to 'k'), letters no contraction uses.
func foldASCII(r rune) rune {
	if r >= 'A' && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// contraction returns the length of 's 't 're 've 'm 'll 'd at pos (which
// holds an apostrophe), 0 if none; fold makes it case-insensitive.
func contraction(c *codepoints, pos, end int, fold bool) int {
	if pos+1 >= end {
		return 0
	}
	n1 := c.cpts[pos+1]
	if fold {
		n1 = foldASCII(n1)
	}
	if n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd' {
		return 2
	}
	if pos+2 >= end {
		return 0
	}
	n2 := c.cpts[pos+2]
	if fold {
		n2 = foldASCII(n2)
	}
	if n1 == 'r' && n2 == 'e' || n1 == 'v' && n2 == 'e' || n1 == 'l' && n2 == 'l' {
		return 3
	}
	return 0
}

// whitespaceEnd matches \s*[\r\n]+|\s+(?!\S)|\s+ at pos as llama.cpp's
// llama3-style splitters do, returning the end of the word (pos+1 when
// nothing matches: a lone code point). withNewlines off gives GPT-2's
// \s+(?!\S)|\s+.
func whitespaceEnd(c *codepoints, pos, start, end int, withNewlines bool) int {
	n, lastNL := 0, 0
	for c.fl(pos+n, start, end)&flagWhitespace != 0 {
		if withNewlines {
			if r := c.cpts[pos+n]; r == '\r' || r == '\n' {
				lastNL = pos + n + 1
			}
		}
		n++
	}
	c.work += n
	switch {
	case lastNL > 0: // \s*[\r\n]+
		return lastNL
	case n > 1 && pos+n < end: // \s+(?!\S): leave the last space to the next word
		return pos + n - 1
	case n > 0: // \s+
		return pos + n
	}
	return pos + 1
}

// skipNewlines returns the end of [\r\n]* at pos.
func skipNewlines(c *codepoints, pos, end int) int {
	for pos < end && (c.cpts[pos] == '\r' || c.cpts[pos] == '\n') {
		pos++
	}
	return pos
}

// splitGPT2 is 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(c *codepoints, start, end int, out []int) []int {
	for pos := start; pos < end; {
		cpt, fl := c.cpts[pos], c.flags[pos]
		if cpt == '\'' {
			if n := contraction(c, pos, end, false); n > 0 {
				pos += n
				out = append(out, pos)
				continue
			}
		}
		fl2 := fl
		if cpt == ' ' {
			fl2 = c.fl(pos+1, start, end)
		}
		var class cptFlags
		switch {
		case fl2&flagLetter != 0: // ?\p{L}+
			class = flagLetter
		case fl2&flagNumber != 0: // ?\p{N}+
			class = flagNumber
		case fl2 != 0 && fl2&(flagWhitespace|flagLetter|flagNumber) == 0: // ?[^\s\p{L}\p{N}]+
			class = 0
		default:
			pos = whitespaceEnd(c, pos, start, end, false)
			out = append(out, pos)
			continue
		}
		if cpt == ' ' {
			pos++
		}
		for {
			f := c.fl(pos, start, end)
			if class != 0 && f&class == 0 || class == 0 && (f == 0 || f&(flagWhitespace|flagLetter|flagNumber) != 0) {
				break
			}
			pos++
		}
		out = append(out, pos)
	}
	return out
}

// splitLlama3 is (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(c *codepoints, start, end int, out []int) []int {
	return splitLlamaLike(c, start, end, out, 3, false)
}

// splitQwen2 is splitLlama3 with \p{N} instead of \p{N}{1,3}.
func splitQwen2(c *codepoints, start, end int, out []int) []int {
	return splitLlamaLike(c, start, end, out, 1, false)
}

// splitQwen35 is splitQwen2 with marks joining letters:
// [^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+ and ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*.
func splitQwen35(c *codepoints, start, end int, out []int) []int {
	return splitLlamaLike(c, start, end, out, 1, true)
}

// splitLlamaLike implements llama.cpp's llama3, qwen2 and qwen35 matchers;
// maxDigits is the digit group size, marks adds \p{M} to the letters.
func splitLlamaLike(c *codepoints, start, end int, out []int, maxDigits int, marks bool) []int {
	word := flagLetter
	if marks {
		word |= flagMark
	}
	for pos := start; pos < end; {
		cpt, fl := c.cpts[pos], c.flags[pos]
		if cpt == '\'' {
			if n := contraction(c, pos, end, true); n > 0 {
				pos += n
				out = append(out, pos)
				continue
			}
		}
		// [^\r\n\p{L}\p{N}]?\p{L}+ (llama.cpp lets a letter take the optional slot)
		if cpt != '\r' && cpt != '\n' && fl&flagNumber == 0 {
			if fl&word != 0 || c.fl(pos+1, start, end)&word != 0 {
				pos++
				for c.fl(pos, start, end)&word != 0 {
					pos++
				}
				out = append(out, pos)
				continue
			}
		}
		// \p{N}{1,maxDigits}
		if fl&flagNumber != 0 {
			ini := pos
			for c.fl(pos, start, end)&flagNumber != 0 {
				pos++
				if pos-ini >= maxDigits {
					out = append(out, pos)
					ini = pos
				}
			}
			if pos > ini {
				out = append(out, pos)
			}
			continue
		}
		// ?[^\s\p{L}\p{N}]+[\r\n]* (llama.cpp tests the current code
		// point's flags for "in range", so a trailing lone space matches)
		fl2 := fl
		if cpt == ' ' {
			fl2 = c.fl(pos+1, start, end)
		}
		if fl2&(flagWhitespace|word|flagNumber) == 0 && fl != 0 {
			if cpt == ' ' {
				pos++
			}
			for {
				f := c.fl(pos, start, end)
				if f == 0 || f&(flagWhitespace|word|flagNumber) != 0 {
					break
				}
				pos++
			}
			pos = skipNewlines(c, pos, end)
			out = append(out, pos)
			continue
		}
		pos = whitespaceEnd(c, pos, start, end, true)
		out = append(out, pos)
	}
	return out
}

// splitKimiK2 follows llama.cpp's unicode_regex_split_custom_kimi_k2, its
// rendering of Kimi-K2's
// [\p{Han}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|...|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// in which a word is any run of non-Han letters.
func splitKimiK2(c *codepoints, start, end int, out []int) []int {
	letter := func(i int) bool { return c.fl(i, start, end)&flagLetter != 0 && !isHan(c.cpts[i]) }
	for pos := start; pos < end; {
		cpt, fl := c.cpts[pos], c.flags[pos]
		if isHan(cpt) { // [\p{Han}]+
			for pos < end && isHan(c.cpts[pos]) {
				pos++
			}
			out = append(out, pos)
			continue
		}
		// A letter word, optionally after one [^\r\n\p{L}\p{N}], with an
		// optional contraction.
		leading := cpt != '\r' && cpt != '\n' && fl&(flagLetter|flagNumber) == 0
		if fl&flagLetter != 0 || leading && letter(pos+1) {
			if leading {
				pos++
			}
			for letter(pos) {
				pos++
			}
			if pos < end && c.cpts[pos] == '\'' {
				pos += contraction(c, pos, end, true)
			}
			out = append(out, pos)
			continue
		}
		if fl&flagNumber != 0 { // \p{N}{1,3}
			ini := pos
			for c.fl(pos, start, end)&flagNumber != 0 {
				pos++
				if pos-ini >= 3 {
					out = append(out, pos)
					ini = pos
				}
			}
			if pos > ini {
				out = append(out, pos)
			}
			continue
		}
		fl2 := fl // ?[^\s\p{L}\p{N}]+[\r\n]*
		if cpt == ' ' {
			fl2 = c.fl(pos+1, start, end)
		}
		if fl2 != 0 && fl2&(flagWhitespace|flagLetter|flagNumber) == 0 {
			if cpt == ' ' {
				pos++
			}
			for {
				f := c.fl(pos, start, end)
				if f == 0 || f&(flagWhitespace|flagLetter|flagNumber) != 0 {
					break
				}
				pos++
			}
			pos = skipNewlines(c, pos, end)
			out = append(out, pos)
			continue
		}
		pos = whitespaceEnd(c, pos, start, end, true)
		out = append(out, pos)
	}
	return out
}
