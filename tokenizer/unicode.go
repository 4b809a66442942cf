package tokenizer

import (
	"sync"
	"unicode"
)

// cptFlags are the code point classes llama.cpp's pre-tokenizers test
// (unicode.h, unicode_cpt_flags): one general-category bit plus the
// whitespace helper bit. A code point outside the text being split has
// no flags at all, which the splitters use as "out of range".
type cptFlags uint16

const (
	flagUndefined  cptFlags = 1 << iota // Cn: unassigned
	flagNumber                          // \p{N}
	flagLetter                          // \p{L}
	flagSeparator                       // \p{Z}
	flagMark                            // \p{M}
	flagPunct                           // \p{P}
	flagSymbol                          // \p{S}
	flagControl                         // \p{C} without Cn: Cc, Cf, Co, Cs
	flagWhitespace                      // \s as llama.cpp defines it (White_Space)
)

// maxCodepoint bounds the code points llama.cpp classifies.
const maxCodepoint = 0x110000

// unicodeTable maps a code point to its flags: a two-level table (blocks
// of 256 code points, identical blocks shared) of about 60 KB.
type unicodeTable struct {
	index  []uint16   // code point >> 8 -> block number
	blocks []cptFlags // block number << 8 | low byte -> flags
}

func (t *unicodeTable) flags(r rune) cptFlags {
	if uint32(r) >= maxCodepoint {
		return flagUndefined
	}
	return t.blocks[int(t.index[r>>8])<<8|int(r&0xff)]
}

// unicode151 lists the code points that Unicode 15.1 assigned and Go's
// tables (Unicode 15.0.0) still call unassigned. llama.cpp generated its
// table (unicode-data.cpp, scripts/gen-unicode-data.py) from Unicode 15.1,
// so without these its classes and ours would differ on them. They were
// found by comparing every code point of the two tables; the comparison
// showed no other difference.
var unicode151 = []struct {
	lo, hi rune
	flags  cptFlags
}{
	{0x2FFC, 0x2FFF, flagSymbol},   // ideographic description characters (So)
	{0x31EF, 0x31EF, flagSymbol},   // CJK stroke HXG (So)
	{0x2EBF0, 0x2EE5D, flagLetter}, // CJK Unified Ideographs Extension I (Lo)
}

// categoryFlags pairs Go's category tables with llama.cpp's flags.
var categoryFlags = []struct {
	table *unicode.RangeTable
	flags cptFlags
}{
	{unicode.Nd, flagNumber}, {unicode.Nl, flagNumber}, {unicode.No, flagNumber},
	{unicode.Lu, flagLetter}, {unicode.Ll, flagLetter}, {unicode.Lt, flagLetter},
	{unicode.Lm, flagLetter}, {unicode.Lo, flagLetter},
	{unicode.Zs, flagSeparator}, {unicode.Zl, flagSeparator}, {unicode.Zp, flagSeparator},
	{unicode.Mn, flagMark}, {unicode.Mc, flagMark}, {unicode.Me, flagMark},
	{unicode.Pc, flagPunct}, {unicode.Pd, flagPunct}, {unicode.Ps, flagPunct},
	{unicode.Pe, flagPunct}, {unicode.Pi, flagPunct}, {unicode.Pf, flagPunct},
	{unicode.Po, flagPunct},
	{unicode.Sm, flagSymbol}, {unicode.Sc, flagSymbol}, {unicode.Sk, flagSymbol},
	{unicode.So, flagSymbol},
	{unicode.Cc, flagControl}, {unicode.Cf, flagControl}, {unicode.Co, flagControl},
	{unicode.Cs, flagControl},
}

// loadUnicodeTable builds the table once per process; it is immutable.
var loadUnicodeTable = sync.OnceValue(buildUnicodeTable)

func buildUnicodeTable() *unicodeTable {
	flat := make([]cptFlags, maxCodepoint)
	for i := range flat {
		flat[i] = flagUndefined
	}
	fill := func(rt *unicode.RangeTable, f cptFlags, set func(*cptFlags, cptFlags)) {
		for _, r := range rt.R16 {
			for c := uint32(r.Lo); c <= uint32(r.Hi); c += uint32(r.Stride) {
				set(&flat[c], f)
			}
		}
		for _, r := range rt.R32 {
			for c := r.Lo; c <= r.Hi; c += r.Stride {
				set(&flat[c], f)
			}
		}
	}
	assign := func(p *cptFlags, f cptFlags) { *p = f }
	for _, c := range categoryFlags {
		fill(c.table, c.flags, assign)
	}
	for _, r := range unicode151 {
		for c := r.lo; c <= r.hi; c++ {
			if flat[c] == flagUndefined {
				flat[c] = r.flags
			}
		}
	}
	fill(unicode.White_Space, flagWhitespace, func(p *cptFlags, f cptFlags) { *p |= f })

	t := &unicodeTable{index: make([]uint16, maxCodepoint>>8)}
	seen := map[[256]cptFlags]uint16{}
	for b := range t.index {
		var blk [256]cptFlags
		copy(blk[:], flat[b<<8:])
		n, ok := seen[blk]
		if !ok {
			n = uint16(len(seen))
			seen[blk] = n
			t.blocks = append(t.blocks, blk[:]...)
		}
		t.index[b] = n
	}
	return t
}

// isHan is llama.cpp's unicode_cpt_is_han (used by the kimi-k2 splitter).
func isHan(r rune) bool {
	switch {
	case r >= 0x4E00 && r <= 0x9FFF, // CJK Unified Ideographs
		r >= 0x3400 && r <= 0x4DBF,   // Extension A
		r >= 0x20000 && r <= 0x2A6DF, // Extension B
		r >= 0x2A700 && r <= 0x2B73F, // Extension C
		r >= 0x2B740 && r <= 0x2B81F, // Extension D
		r >= 0x2B820 && r <= 0x2CEAF, // Extension E
		r >= 0x2CEB0 && r <= 0x2EBEF, // Extension F
		r >= 0xF900 && r <= 0xFAFF,   // Compatibility Ideographs
		r >= 0x2F800 && r <= 0x2FA1F: // Compatibility Ideographs Supplement
		return true
	}
	return false
}

// decodeCpt decodes one code point at s[i:] the way llama.cpp's
// unicode_cpt_from_utf8 does: it checks only the lead byte and that enough
// continuation bytes follow, so overlong forms and surrogates decode to
// their (out-of-spec) value. A malformed byte yields U+FFFD and size 1.
// Sequences decoding above U+10FFFF, on which llama.cpp throws later
// (unicode_cpt_to_utf8), are treated as malformed here.
func decodeCpt(s string, i int) (rune, int) {
	b0 := s[i]
	switch {
	case b0 < 0x80:
		return rune(b0), 1
	case b0&0x40 == 0:
		return 0xFFFD, 1
	case b0&0x20 == 0:
		if i+1 >= len(s) || s[i+1]&0xC0 != 0x80 {
			return 0xFFFD, 1
		}
		return rune(b0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case b0&0x10 == 0:
		if i+2 >= len(s) || s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 {
			return 0xFFFD, 1
		}
		return rune(b0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
	case b0&0x08 == 0:
		if i+3 >= len(s) || s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 || s[i+3]&0xC0 != 0x80 {
			return 0xFFFD, 1
		}
		r := rune(b0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F)
		if r >= maxCodepoint {
			return 0xFFFD, 1
		}
		return r, 4
	}
	return 0xFFFD, 1
}

// appendCpt encodes r as llama.cpp's unicode_cpt_to_utf8 does: plain
// UTF-8 without rejecting surrogates (utf8.AppendRune would).
func appendCpt(b []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(b, byte(r))
	case r < 0x800:
		return append(b, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(b, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
	return append(b, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
}

// utf8Len is llama.cpp's unicode_len_utf8: the sequence length a lead
// byte announces, 1 for continuation bytes.
func utf8Len(b byte) int {
	return [16]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4}[b>>4]
}

// byteRunes is GPT-2's byte-to-unicode table (bytes_to_unicode in
// OpenAI's encoder.py, unicode_byte_to_utf8_map in llama.cpp): printable
// Latin-1 bytes map to themselves, the other 68 to U+0100 upwards.
var byteRunes = func() (m [256]rune) {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if b >= 0x21 && b <= 0x7E || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
			m[b] = rune(b)
		} else {
			m[b] = 256 + n
			n++
		}
	}
	return m
}()

// runeBytes inverts byteRunes: the byte a code point up to U+0143
// stands for, or -1.
var runeBytes = func() (m [0x144]int16) {
	for i := range m {
		m[i] = -1
	}
	for b, r := range byteRunes {
		m[r] = int16(b)
	}
	return m
}()

// runeByte returns the byte r stands for in GPT-2's byte-level alphabet.
func runeByte(r rune) (byte, bool) {
	if r < 0 || int(r) >= len(runeBytes) || runeBytes[r] < 0 {
		return 0, false
	}
	return byte(runeBytes[r]), true
}

// isCSpace is C's isspace in the "C" locale, which llama.cpp's special
// token lstrip/rstrip and std::regex's \s use.
func isCSpace(b byte) bool {
	return b == ' ' || b >= '\t' && b <= '\r'
}
