package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// readInputFile reads a text input named by a flag (a chat template, a
// prompt file). It opens without blocking, so that a named pipe without
// a writer, which a plain open would wait on forever (deaf to SIGTERM),
// is refused at once; a pipe with a writer, such as bash's <(command),
// is read to its end. Directories and devices are refused, named.
func readInputFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	mode := st.Mode()
	switch {
	case mode.IsRegular():
	case mode&os.ModeNamedPipe != 0:
		b, err := io.ReadAll(f)
		if err == nil && len(b) == 0 {
			return nil, fmt.Errorf("%s is a named pipe with nothing written to it", path)
		}
		return b, err
	case mode.IsDir():
		return nil, fmt.Errorf("%s is a directory, not a file", path)
	default:
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, mode.Type())
	}
	return io.ReadAll(f)
}
