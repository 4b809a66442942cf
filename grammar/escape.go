package grammar

import (
	"fmt"
	"strings"
)

// quoteLiteral renders s as a GBNF string literal.
func quoteLiteral(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteString(escapeRune(r))
		}
	}
	b.WriteByte('"')
	return b.String()
}

// classChar renders r for use inside a GBNF character class.
func classChar(r rune) string {
	switch r {
	case '\\', ']', '[', '-', '^', '"':
		return `\` + string(r)
	}
	return escapeRune(r)
}

// escapeRune writes control and invisible characters as escapes.
func escapeRune(r rune) string {
	switch {
	case r == '\n':
		return `\n`
	case r == '\r':
		return `\r`
	case r == '\t':
		return `\t`
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf(`\x%02X`, r)
	case r >= 0x80 && r < 0xa0, r == 0x2028, r == 0x2029:
		return fmt.Sprintf(`\u%04X`, r)
	}
	return string(r)
}
