package gguf

import "errors"

// ErrFormat is wrapped by every error about malformed GGUF bytes: test for
// it with errors.Is to tell a bad file from an I/O failure.
var ErrFormat = errors.New("gguf: invalid file")
