package kernels

import (
	"fmt"

	"github.com/inference-x/inference-x/gguf"
)

// Matrix is a read-only weight matrix of Rows rows of Cols elements in
// ggml's row-major layout (a 2-D GGUF tensor, or one expert of a 3-D one).
type Matrix struct {
	Type     gguf.Type
	Rows     int
	Cols     int
	RowBytes int
	Data     []byte
	format   *Format
}

// NewMatrix checks that data holds rows x cols elements of type t and that
// kernels exist for t.
func NewMatrix(t gguf.Type, rows, cols int, data []byte) (Matrix, error) {
	f, err := Lookup(t)
	if err != nil {
		return Matrix{}, err
	}
	rb, err := t.RowBytes(cols)
	if err != nil {
		return Matrix{}, err
	}
	if len(data) != rb*rows {
		return Matrix{}, fmt.Errorf("kernels: %v matrix %dx%d needs %d bytes, got %d", t, rows, cols, rb*rows, len(data))
	}
	if f.Dot == nil && f.DotF32 == nil {
		return Matrix{}, fmt.Errorf("%w: %v has no dot product", ErrNoKernel, t)
	}
	return Matrix{Type: t, Rows: rows, Cols: cols, RowBytes: rb, Data: data, format: f}, nil
}

// Row returns the bytes of row r.
func (m *Matrix) Row(r int) []byte { return m.Data[r*m.RowBytes : (r+1)*m.RowBytes] }

// Format returns the kernels of the matrix type.
func (m *Matrix) Format() *Format { return m.format }

// Activations are n rows of f32 activations plus, made on demand and
// cached until Reset, their quantized copies for each companion type a
// matrix asks for. Buffers grow to the largest size seen and are reused,
// so steady-state use allocates nothing.
type Activations struct {
	X    []float32
	N    int
	Cols int
	// Strided says the rows stand for a non-contiguous (permuted) view in
	// llama.cpp's graph. ggml then skips llamafile's tinyBLAS for F32
	// weights (which take no activation conversion) and runs vec_dot;
	// the other types are converted to a contiguous buffer first and are
	// unaffected. Reset clears it.
	Strided bool

	quant [gguf.TypeCount][]byte
	valid [gguf.TypeCount]bool
}

// Reset points a at n rows of cols values in x and drops cached quantizations.
func (a *Activations) Reset(x []float32, n, cols int) {
	a.X, a.N, a.Cols, a.Strided = x[:n*cols], n, cols, false
	clear(a.valid[:])
}

// Quantized returns the rows quantized to t (ggml-cpu's run-time rule),
// computing them on first use.
func (a *Activations) Quantized(t gguf.Type) []byte {
	rb, _ := t.RowBytes(a.Cols)
	if a.valid[t] {
		return a.quant[t][:rb*a.N]
	}
	if cap(a.quant[t]) < rb*a.N {
		a.quant[t] = make([]byte, rb*a.N)
	}
	q := a.quant[t][:rb*a.N]
	f := formats[t]
	for i := 0; i < a.N; i++ {
		quantizeCPU(f, q[i*rb:(i+1)*rb], a.X[i*a.Cols:(i+1)*a.Cols])
	}
	a.valid[t] = true
	return q
}

func quantizeCPU(f *Format, dst []byte, src []float32) {
	if f.QuantizeCPU != nil {
		f.QuantizeCPU(dst, src)
		return
	}
	f.Quantize(dst, src, nil)
}

// MatMul computes out[t*w.Rows+r] = w.Row(r) . x.Row(t) for every token row
// t of x and every weight row r, in ggml's arithmetic: the activations are
// quantized to the weight type's companion type and the dot runs on
// integers. Rows are split across the pool; each weight row is read once
// for all tokens.
func (p *Pool) MatMul(out []float32, w *Matrix, x *Activations) {
	if x.Cols != w.Cols {
		panic(fmt.Sprintf("kernels: MatMul of %d-wide rows by a %dx%d matrix", x.Cols, w.Rows, w.Cols))
	}
	mm := &p.mm
	mm.out, mm.w, mm.x, mm.n = out[:x.N*w.Rows], w, x.X, x.N
	f := w.format
	mm.dot, mm.dotF32 = f.Dot, f.DotF32
	if bd := batchDotFor(w, x.N); bd != nil {
		mm.dot = bd
	}
	if bd := batchDotF32For(w, x.N); bd != nil && !x.Strided {
		mm.dotF32 = bd
	}
	if f.VecDot == gguf.TypeF32 || f.Dot == nil {
		mm.q, mm.qRow = nil, 0
	} else {
		mm.q = x.Quantized(f.VecDot)
		mm.qRow = len(mm.q) / x.N
	}
	p.Run(w.Rows, 4, mm)
	mm.out, mm.w, mm.x, mm.q, mm.dot, mm.dotF32 = nil, nil, nil, nil, nil, nil
}

// matmulTask is MatMul's work, kept in the Pool so dispatch allocates
// nothing.
type matmulTask struct {
	out    []float32
	w      *Matrix
	x      []float32
	q      []byte
	qRow   int
	n      int
	dot    func(n int, w, a []byte) float32
	dotF32 func(w []byte, x []float32) float32
}

// tokenTile is how many token rows share one pass over a weight row block.
const tokenTile = 16

func (m *matmulTask) Do(lo, hi, _ int) {
	w, cols := m.w, m.w.Cols
	for t0 := 0; t0 < m.n; t0 += tokenTile {
		t1 := min(t0+tokenTile, m.n)
		for r := lo; r < hi; r++ {
			row := w.Data[r*w.RowBytes : (r+1)*w.RowBytes]
			if m.q == nil {
				for t := t0; t < t1; t++ {
					m.out[t*w.Rows+r] = m.dotF32(row, m.x[t*cols:(t+1)*cols])
				}
				continue
			}
			for t := t0; t < t1; t++ {
				m.out[t*w.Rows+r] = m.dot(cols, row, m.q[t*m.qRow:(t+1)*m.qRow])
			}
		}
	}
}
