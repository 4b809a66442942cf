// Package ixlg reads and writes IXLG files: the logits of every prompt
// position, as `coordinator run --logits-out` writes them and
// ../shared/peer/compare_logits.py reads them.
//
// Layout, little endian: magic "IXLG", u32 version 1, u32 n_tokens,
// u32 n_vocab, n_tokens int32 token ids, then n_tokens x n_vocab float32
// (row i = the next-token logits after token i).
package ixlg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Magic starts every IXLG file.
const Magic = "IXLG"

// Writer streams an IXLG file row by row.
type Writer struct {
	w       *bufio.Writer
	nTokens int
	nVocab  int
	rows    int
	buf     []byte
}

// NewWriter writes the header and the token ids.
func NewWriter(w io.Writer, tokens []int32, nVocab int) (*Writer, error) {
	bw := bufio.NewWriter(w)
	hdr := make([]byte, 0, 16+4*len(tokens))
	hdr = append(hdr, Magic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, 1)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(tokens)))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(nVocab))
	for _, t := range tokens {
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(t))
	}
	if _, err := bw.Write(hdr); err != nil {
		return nil, err
	}
	return &Writer{w: bw, nTokens: len(tokens), nVocab: nVocab, buf: make([]byte, 4*nVocab)}, nil
}

// WriteRow writes the logits of the next position.
func (w *Writer) WriteRow(logits []float32) error {
	if len(logits) != w.nVocab {
		return fmt.Errorf("ixlg: row of %d logits, vocabulary is %d", len(logits), w.nVocab)
	}
	if w.rows == w.nTokens {
		return errors.New("ixlg: more rows than tokens")
	}
	for i, v := range logits {
		binary.LittleEndian.PutUint32(w.buf[4*i:], math.Float32bits(v))
	}
	w.rows++
	_, err := w.w.Write(w.buf)
	return err
}

// Close flushes; it fails if fewer rows than tokens were written.
func (w *Writer) Close() error {
	if w.rows != w.nTokens {
		return fmt.Errorf("ixlg: %d rows written for %d tokens", w.rows, w.nTokens)
	}
	return w.w.Flush()
}

// File is a whole IXLG file in memory.
type File struct {
	Tokens []int32
	NVocab int
	Logits []float32 // len(Tokens) x NVocab
}

// Row returns the logits after token i.
func (f *File) Row(i int) []float32 { return f.Logits[i*f.NVocab : (i+1)*f.NVocab] }

// Read parses an IXLG stream, checking sizes against what it holds.
func Read(r io.Reader) (*File, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("ixlg: header: %w", err)
	}
	if string(hdr[:4]) != Magic {
		return nil, fmt.Errorf("ixlg: bad magic %q", hdr[:4])
	}
	if v := binary.LittleEndian.Uint32(hdr[4:]); v != 1 {
		return nil, fmt.Errorf("ixlg: unsupported version %d", v)
	}
	n := int(binary.LittleEndian.Uint32(hdr[8:]))
	nv := int(binary.LittleEndian.Uint32(hdr[12:]))
	const limit = 1 << 31
	if n > limit/4 || nv > limit/4 || int64(n)*int64(nv) > limit {
		return nil, fmt.Errorf("ixlg: %d x %d logits is too large", n, nv)
	}
	f := &File{Tokens: make([]int32, n), NVocab: nv}
	if err := binary.Read(r, binary.LittleEndian, f.Tokens); err != nil {
		return nil, fmt.Errorf("ixlg: token ids: %w", err)
	}
	f.Logits = make([]float32, n*nv)
	if err := binary.Read(r, binary.LittleEndian, f.Logits); err != nil {
		return nil, fmt.Errorf("ixlg: logits: %w", err)
	}
	return f, nil
}
