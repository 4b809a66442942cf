package toolcall

import "strings"

// st is the outcome of one parsing step on a text that may still grow.
type st int

const (
	ok   st = iota // matched
	more           // the text ends before it is decided (a prefix)
	bad            // cannot match
)

// cur is a position in a text.
type cur struct {
	s string
	i int
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\r' || b == '\t' }

func (c *cur) ws() {
	for c.i < len(c.s) && isSpace(c.s[c.i]) {
		c.i++
	}
}

func (c *cur) rest() string { return c.s[c.i:] }

func (c *cur) eof() bool { return c.i >= len(c.s) }

// lit consumes m.
func (c *cur) lit(m string) st {
	r := c.s[c.i:]
	if strings.HasPrefix(r, m) {
		c.i += len(m)
		return ok
	}
	if strings.HasPrefix(m, r) {
		return more
	}
	return bad
}

// until consumes the text up to and including m and returns the text
// before m.
func (c *cur) until(m string) (string, st) {
	k := strings.Index(c.s[c.i:], m)
	if k < 0 {
		return "", more
	}
	out := c.s[c.i : c.i+k]
	c.i += k + len(m)
	return out, ok
}

// holdback is the length of the longest suffix of s that is a proper
// prefix of one of the markers: text that may still become a marker.
func holdback(s string, markers ...string) int {
	h := 0
	for _, m := range markers {
		for k := min(len(m)-1, len(s)); k > h; k-- {
			if strings.HasSuffix(s, m[:k]) {
				h = k
				break
			}
		}
	}
	return h
}

// firstOf finds the earliest marker in s.
func firstOf(s string, markers []string) (int, string) {
	best, which := -1, ""
	for _, m := range markers {
		if k := strings.Index(s, m); k >= 0 && (best < 0 || k < best) {
			best, which = k, m
		}
	}
	return best, which
}

// scanJSON finds the end of the JSON value starting at s[i]: structural
// only (strings, nesting); validity is checked on the complete value.
func scanJSON(s string, i int) (int, st) {
	if i >= len(s) {
		return i, more
	}
	switch s[i] {
	case '{', '[':
	case '"':
		return scanString(s, i)
	default:
		j := i
		for j < len(s) && strings.IndexByte("+-.0123456789abcdefghijklmnopqrstuvwxyzE", s[j]) >= 0 {
			j++
		}
		if j == i {
			return i, bad
		}
		if j == len(s) {
			return j, more
		}
		return j, ok
	}
	var stack []byte
	j := i
	for j < len(s) {
		switch ch := s[j]; ch {
		case '"':
			k, r := scanString(s, j)
			if r != ok {
				return k, r
			}
			j = k
			continue
		case '{', '[':
			stack = append(stack, ch)
		case '}', ']':
			open := byte('{')
			if ch == ']' {
				open = '['
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return j, bad
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return j + 1, ok
			}
		}
		j++
	}
	return j, more
}

// scanString finds the end of the JSON string starting at the quote s[i].
func scanString(s string, i int) (int, st) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1, ok
		case '\n':
			return j, bad
		}
	}
	return len(s), more
}

// field consumes the text up to and including end and returns the text
// before it; a byte of badChars before end makes it bad. The outcome
// depends only on the text so far, so a longer text never undoes it.
func (c *cur) field(end, badChars string) (string, st) {
	r := c.s[c.i:]
	k := strings.Index(r, end)
	seg := r
	if k >= 0 {
		seg = r[:k]
	}
	if strings.ContainsAny(seg, badChars) {
		return "", bad
	}
	if k < 0 {
		return "", more
	}
	c.i += k + len(end)
	return seg, ok
}
