package tokenizer

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// buildPieces computes every token's text as llama.cpp's token_to_piece
// renders it with special=true (its piece cache): SentencePiece ▁ become
// spaces, byte-level BPE text becomes the bytes it stands for, byte
// tokens <0xNN> the byte; control, unknown and user-defined tokens keep
// their text; unused and undefined tokens render as nothing.
func (t *Tokenizer) buildPieces() {
	t.pieces = make([]string, len(t.texts))
	for id, text := range t.texts {
		a := t.attrs[id]
		switch {
		case a&(AttrUnknown|AttrControl|AttrUserDefined) != 0:
			t.pieces[id] = text
		case a&AttrNormal != 0:
			if t.model == ModelSPM {
				t.pieces[id] = strings.ReplaceAll(text, "\u2581", " ")
			} else {
				t.pieces[id] = decodeByteLevel(text)
			}
		case a&AttrByte != 0:
			t.pieces[id] = string([]byte{byteOfToken(text)})
		}
	}
}

// byteOfToken parses the NN of a byte token "<0xNN>" like llama.cpp
// (strtol on text[3:5]: a bad digit ends the number).
func byteOfToken(text string) byte {
	if len(text) < 4 {
		return 0
	}
	hex := text[3:min(5, len(text))]
	v := 0
	for i := 0; i < len(hex); i++ {
		d, err := strconv.ParseUint(hex[i:i+1], 16, 8)
		if err != nil {
			break
		}
		v = v*16 + int(d)
	}
	return byte(v)
}

// decodeByteLevel maps byte-level BPE text back to bytes (llama.cpp's
// llama_decode_text), keeping its rendering of a character outside the
// byte alphabet: "[UNK_BYTE_0x<hex of the character>" + text + "]".
func decodeByteLevel(text string) string {
	var b []byte
	for i := 0; i < len(text); {
		r, n := decodeCpt(text, i)
		i += n
		if c, ok := runeByte(r); ok {
			b = append(b, c)
			continue
		}
		b = append(b, "[UNK_BYTE_0x"...)
		for _, c := range appendCpt(nil, r) {
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		}
		b = append(b, text...)
		b = append(b, ']')
	}
	return string(b)
}

// TokenToPiece returns the text of one token as llama.cpp's
// llama_token_to_piece(id, lstrip=0, special) renders it: control and
// unknown tokens are "" unless special is set. Out-of-range ids give "".
func (t *Tokenizer) TokenToPiece(id int32, special bool) string {
	if id < 0 || int(id) >= len(t.pieces) {
		return ""
	}
	if !special && t.attrs[id]&(AttrUnknown|AttrControl) != 0 {
		return ""
	}
	return t.pieces[id]
}

// Decode returns the text of ids as llama.cpp's llama_detokenize with
// remove_special and unparse_special off: control tokens render as
// nothing.
func (t *Tokenizer) Decode(ids []int32) string { return t.Detokenize(ids, false, false) }

// DecodeSpecial is Decode rendering control tokens as their text.
func (t *Tokenizer) DecodeSpecial(ids []int32) string { return t.Detokenize(ids, false, true) }

// Detokenize is llama.cpp's llama_detokenize: removeSpecial drops a
// leading BOS and trailing EOS that the vocabulary adds; unparseSpecial
// renders control tokens as their text. SentencePiece vocabularies lose
// one leading space of the first token, and vocabularies with
// clean_spaces get llama.cpp's clean-up of " ?", " 's", ... applied.
func (t *Tokenizer) Detokenize(ids []int32, removeSpecial, unparseSpecial bool) string {
	return string(t.AppendDetokenize(nil, ids, removeSpecial, unparseSpecial))
}

// AppendDetokenize is Detokenize appending to dst.
func (t *Tokenizer) AppendDetokenize(dst []byte, ids []int32, removeSpecial, unparseSpecial bool) []byte {
	removeSpace := t.addSpacePrefix
	if removeSpecial && t.addBOS && len(ids) > 0 && ids[0] == t.special.bos {
		removeSpace = false
		ids = ids[1:]
	}
	if removeSpecial && t.addEOS && len(ids) > 0 && ids[len(ids)-1] == t.special.eos {
		ids = ids[:len(ids)-1]
	}
	start := len(dst)
	for _, id := range ids {
		p := t.TokenToPiece(id, unparseSpecial)
		if removeSpace {
			p = strings.TrimPrefix(p, " ")
			removeSpace = false
		}
		dst = append(dst, p...)
	}
	if t.cleanSpaces {
		dst = append(dst[:start], cleanSpaces(dst[start:])...)
	}
	return dst
}

// cleanSpaces is llama.cpp's clean_up_tokenization_spaces pass over the
// detokenized text, in place: drop a space before ? ! . , ; drop the
// spaces around a lone ' ; drop the space before 's 'm 're 've.
func cleanSpaces(text []byte) []byte {
	n, total := len(text), min(len(text), 1)
	for i := 1; i < n; i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			total--
		}
		text[total] = x
		total++
	}
	n, total = total, min(total, 1)
	for i := 1; i < n; i++ {
		x := text[i]
		if x == '\'' && i+1 < n && text[i-1] == ' ' && text[i+1] == ' ' {
			total--
			i++
			text[i] = 0 // llama.cpp marks the skipped space so it cannot start another match
		}
		text[total] = x
		total++
	}
	n, total = total, min(total, 1)
	for i := 1; i < n; i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < n {
			switch x1 := text[i+1]; {
			case x1 == 't' || x1 == 'd':
			case x1 == 's' || x1 == 'm':
				total--
			case i+2 < n:
				if x2 := text[i+2]; x1 == 'r' && x2 == 'e' || x1 == 'v' && x2 == 'e' {
					total--
				}
			}
		}
		text[total] = x
		total++
	}
	return text[:total]
}

// Decoder turns a stream of token ids into text for streaming output. The
// concatenation of everything Add returns, followed by Flush, equals
// Detokenize(ids, false, special) whenever that is valid UTF-8; Add never
// returns part of a character: it holds bytes until the character is
// complete (malformed bytes come out as U+FFFD), and, where the
// vocabulary cleans up spaces, holds a space or apostrophe until the next
// bytes decide its fate. A Decoder is not safe for concurrent use.
type Decoder struct {
	t       *Tokenizer
	special bool
	started bool

	p1 cleanPass1
	p2 cleanPass2
	p3 cleanPass3
	a  []byte // pass outputs (scratch)
	b  []byte
	u  []byte // bytes waiting for their character to complete
}

// NewDecoder returns a streaming decoder; special renders control tokens
// as their text.
func (t *Tokenizer) NewDecoder(special bool) *Decoder {
	return &Decoder{t: t, special: special}
}

// Add decodes one more token and returns the text that is now final.
func (d *Decoder) Add(id int32) string {
	p := d.piece(id)
	if !d.t.cleanSpaces && len(d.u) == 0 && isCompleteUTF8(p) {
		return p // the common case: no copy
	}
	return string(d.appendPiece(nil, p, false))
}

// Append is Add appending to dst; it does not allocate when dst has room.
func (d *Decoder) Append(dst []byte, id int32) []byte {
	return d.appendPiece(dst, d.piece(id), false)
}

// Flush returns the text still held back (an incomplete character comes
// out as U+FFFD) and resets the decoder for a new sequence.
func (d *Decoder) Flush() string {
	out := string(d.appendPiece(nil, "", true))
	*d = Decoder{t: d.t, special: d.special, a: d.a[:0], b: d.b[:0], u: d.u[:0]}
	return out
}

func (d *Decoder) piece(id int32) string {
	p := d.t.TokenToPiece(id, d.special)
	if !d.started {
		d.started = true
		if d.t.addSpacePrefix {
			p = strings.TrimPrefix(p, " ")
		}
	}
	return p
}

func (d *Decoder) appendPiece(dst []byte, p string, final bool) []byte {
	var u []byte
	if d.t.cleanSpaces {
		d.a = d.p1.feed(d.a[:0], p, final)
		d.b = d.p2.feed(d.b[:0], d.a, final)
		u = d.p3.feed(d.u, d.b, final)
	} else {
		u = append(d.u, p...)
	}
	keep := 0
	if !final {
		keep = incompleteTail(u)
	}
	dst = appendValidUTF8(dst, u[:len(u)-keep])
	d.u = append(u[:0], u[len(u)-keep:]...)
	return dst
}

// cleanPass1 streams cleanSpaces' first pass: a space is held until the
// next byte shows whether it precedes ? ! . ,
type cleanPass1 struct{ held bool }

func (c *cleanPass1) feed(out []byte, in string, final bool) []byte {
	for i := 0; i < len(in); i++ {
		x := in[i]
		if c.held {
			c.held = false
			if x != '?' && x != '!' && x != '.' && x != ',' {
				out = append(out, ' ')
			}
		}
		if x == ' ' {
			c.held = true
		} else {
			out = append(out, x)
		}
	}
	if final && c.held {
		c.held = false
		out = append(out, ' ')
	}
	return out
}

// cleanPass2 streams the second pass (" ' " loses both spaces).
type cleanPass2 struct {
	prev    byte // the previous input byte as the pass sees it (0 after a removal)
	held    bool // the last output byte is a space not yet released
	pending []byte
}

func (c *cleanPass2) write(out []byte, x byte) []byte {
	if c.held {
		out = append(out, ' ')
		c.held = false
	}
	if x == ' ' {
		c.held = true
		return out
	}
	return append(out, x)
}

func (c *cleanPass2) feed(out []byte, in []byte, final bool) []byte {
	data := append(c.pending, in...)
	i := 0
	for i < len(data) {
		x := data[i]
		if x == '\'' && c.prev == ' ' {
			if i+1 >= len(data) && !final {
				break // wait for the next byte
			}
			if i+1 < len(data) && data[i+1] == ' ' {
				c.held = false // the space before goes
				out = c.write(out, x)
				c.prev = 0 // and the space after is skipped
				i += 2
				continue
			}
		}
		out = c.write(out, x)
		c.prev = x
		i++
	}
	c.pending = data[:copy(data, data[i:])] // keeps data's array for the next call
	if final && c.held {
		c.held = false
		out = append(out, ' ')
	}
	return out
}

// cleanPass3 streams the third pass (" 's", " 'm", " 're", " 've" lose
// the space).
type cleanPass3 struct {
	prev    byte
	held    bool
	pending []byte
}

func (c *cleanPass3) write(out []byte, x byte) []byte {
	if c.held {
		out = append(out, ' ')
		c.held = false
	}
	if x == ' ' {
		c.held = true
		return out
	}
	return append(out, x)
}

func (c *cleanPass3) feed(out []byte, in []byte, final bool) []byte {
	data := append(c.pending, in...)
	i := 0
	for i < len(data) {
		x := data[i]
		if x == '\'' && c.prev == ' ' {
			need := 1
			if i+1 < len(data) && data[i+1] != 't' && data[i+1] != 'd' && data[i+1] != 's' && data[i+1] != 'm' {
				need = 2
			}
			if i+need >= len(data) && !final {
				break // wait for the bytes that decide
			}
			if i+1 < len(data) {
				x1 := data[i+1]
				drop := x1 == 's' || x1 == 'm'
				if i+2 < len(data) && (x1 == 'r' || x1 == 'v') && data[i+2] == 'e' {
					drop = true
				}
				if drop {
					c.held = false
				}
			}
		}
		out = c.write(out, x)
		c.prev = x
		i++
	}
	c.pending = data[:copy(data, data[i:])] // keeps data's array for the next call
	if final && c.held {
		c.held = false
		out = append(out, ' ')
	}
	return out
}

// isCompleteUTF8 reports whether s is valid UTF-8 that does not end
// inside a character.
func isCompleteUTF8(s string) bool { return utf8.ValidString(s) }

// incompleteTail returns how many bytes at the end of b are the start of
// a character that more bytes could still complete.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < 0x80 {
			return 0
		}
		if c < 0xC0 {
			continue // continuation byte: look further back
		}
		need := 0
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 2
		case c >= 0xE0 && c <= 0xEF:
			need = 3
		case c >= 0xF0 && c <= 0xF4:
			need = 4
		default:
			return 0
		}
		if k >= need {
			return 0
		}
		tail := b[len(b)-k:]
		if len(tail) > 1 { // the second byte's range depends on the lead
			lo, hi := byte(0x80), byte(0xBF)
			switch c {
			case 0xE0:
				lo = 0xA0
			case 0xED:
				hi = 0x9F
			case 0xF0:
				lo = 0x90
			case 0xF4:
				hi = 0x8F
			}
			if tail[1] < lo || tail[1] > hi {
				return 0
			}
		}
		for _, x := range tail[1:] {
			if x < 0x80 || x > 0xBF {
				return 0
			}
		}
		return k
	}
	return 0
}

// appendValidUTF8 appends b with malformed bytes replaced by U+FFFD.
func appendValidUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, b[:n]...)
		}
		b = b[n:]
	}
	return dst
}
