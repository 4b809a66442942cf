package gguf

import (
	"strconv"
	"strings"
)

// BlockOf returns N for a tensor named "blk.N.…", the naming llama.cpp uses
// for every per-layer tensor, and false for any other name.
func BlockOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	dot := strings.IndexByte(rest, '.')
	if dot <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:dot])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
