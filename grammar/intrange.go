package grammar

import (
	"fmt"
	"strconv"
	"strings"
)

// maxDigits bounds the digits of an unbounded integer, as the integer
// primitive does (integral-part: up to 16 digits).
const maxDigits = 16

// intRange is a GBNF expression for the decimal integers in lo..hi (a
// missing bound is open), without leading zeros, "-" for negatives.
func intRange(lo int64, hasLo bool, hi int64, hasHi bool) string {
	var alts []string
	neg := func(e string) string { return `"-" (` + e + `)` }
	switch {
	case hasLo && hasHi && lo >= 0:
		alts = append(alts, between(uint64(lo), uint64(hi)))
	case hasLo && hasHi && hi < 0:
		alts = append(alts, neg(between(uint64(-hi), uint64(-lo))))
	case hasLo && hasHi:
		alts = append(alts, neg(between(1, uint64(-lo))), between(0, uint64(hi)))
	case hasLo && lo >= 0:
		alts = append(alts, atLeast(uint64(lo)))
	case hasLo:
		alts = append(alts, neg(between(1, uint64(-lo))), atLeast(0))
	case hi >= 0:
		alts = append(alts, neg(atLeast(1)), between(0, uint64(hi)))
	default:
		alts = append(alts, neg(atLeast(uint64(-hi))))
	}
	return strings.Join(alts, " | ")
}

// atLeast is the non-negative integers >= n (up to maxDigits digits).
func atLeast(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) >= maxDigits {
		return between(n, pow10(maxDigits)-1)
	}
	e := between(n, pow10(len(s))-1)
	return fmt.Sprintf("%s | [1-9] [0-9]{%d,%d}", e, len(s), maxDigits-1)
}

func pow10(n int) uint64 {
	p := uint64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// between is the non-negative integers in a..b.
func between(a, b uint64) string {
	var alts []string
	la, lb := len(strconv.FormatUint(a, 10)), len(strconv.FormatUint(b, 10))
	for l := la; l <= lb; l++ {
		lo, hi := a, b
		if l > la {
			lo = pow10(l - 1)
		}
		if l < lb {
			hi = pow10(l) - 1
		}
		alts = append(alts, sameLength(strconv.FormatUint(lo, 10), strconv.FormatUint(hi, 10))...)
	}
	return strings.Join(alts, " | ")
}

// sameLength gives sequences matching the numbers a..b written with the
// same number of digits.
func sameLength(a, b string) []string {
	if a == "" {
		return []string{`""`}
	}
	k := len(a) - 1
	if a[0] == b[0] {
		var out []string
		for _, rest := range sameLength(a[1:], b[1:]) {
			out = append(out, joinSeq(`"`+a[:1]+`"`, rest))
		}
		return out
	}
	if strings.Trim(a[1:], "0") == "" && strings.Trim(b[1:], "9") == "" {
		return []string{joinSeq(digitRange(a[0], b[0]), anyDigits(k))}
	}
	var out []string
	nines, zeros := strings.Repeat("9", k), strings.Repeat("0", k)
	for _, rest := range sameLength(a[1:], nines) {
		out = append(out, joinSeq(`"`+a[:1]+`"`, rest))
	}
	if a[0]+1 <= b[0]-1 {
		out = append(out, joinSeq(digitRange(a[0]+1, b[0]-1), anyDigits(k)))
	}
	for _, rest := range sameLength(zeros, b[1:]) {
		out = append(out, joinSeq(`"`+b[:1]+`"`, rest))
	}
	return out
}

func digitRange(a, b byte) string {
	if a == b {
		return `"` + string(a) + `"`
	}
	return "[" + string(a) + "-" + string(b) + "]"
}

func anyDigits(k int) string {
	if k == 0 {
		return ""
	}
	return fmt.Sprintf("[0-9]{%d}", k)
}

func joinSeq(a, b string) string {
	switch {
	case b == "" || b == `""`:
		return a
	case a == "":
		return b
	}
	return a + " " + b
}
