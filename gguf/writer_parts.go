package gguf

import "fmt"

// WriteTensorParts writes the data of the next declared tensor from
// several pieces (written in order, without joining them in memory), so a
// tensor assembled from slices of others, such as a subset of a 3-D
// expert tensor, streams like any other. The pieces must add up to the
// tensor's exact size.
func (w *Writer) WriteTensorParts(parts [][]byte) error {
	if w.err != nil {
		return w.err
	}
	if w.next >= len(w.specs) {
		return fmt.Errorf("gguf: WriteTensorParts: all declared tensors are written")
	}
	var n int64
	for _, p := range parts {
		n += int64(len(p))
	}
	if n != w.sizes[w.next] {
		return fmt.Errorf("gguf: tensor %q needs %d bytes, got %d", w.specs[w.next].Name, w.sizes[w.next], n)
	}
	for _, p := range parts {
		w.raw(p)
	}
	w.pad()
	w.next++
	return w.err
}
