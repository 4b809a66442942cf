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
	// tiles is the Q8_K quantization packed for the AMX tile kernels,
	// made on demand like quant; segment s's groups start at tileOff[s].
	tiles      []byte
	tileOff    []int
	tilesValid bool
	// segs are the segment bounds (SetSegments), nil for one segment.
	segs []int
}

// SetSegments splits a's rows into consecutive segments, segment i being
// rows [bounds[i], bounds[i+1]) (bounds[0] = 0, the last bound = a.N),
// which multiply different matrices (Pool.RowsProduct takes one segment).
// a keeps bounds until the next Reset; MatMul does not take segmented
// activations.
func (a *Activations) SetSegments(bounds []int) {
	a.segs = bounds
	a.tilesValid = false
}

// Reset points a at n rows of cols values in x and drops cached quantizations.
func (a *Activations) Reset(x []float32, n, cols int) {
	a.X, a.N, a.Cols, a.Strided = x[:n*cols], n, cols, false
	clear(a.valid[:])
	a.tilesValid, a.segs = false, nil
}

// QuantizedRows points a at n rows of cols values that the caller holds
// only quantized to t: it returns a's buffer of n rows of t for the caller
// to fill before any product uses a. Only products whose companion type is
// t can use a then.
func (a *Activations) QuantizedRows(t gguf.Type, n, cols int) []byte {
	a.X, a.N, a.Cols, a.Strided = nil, n, cols, false
	clear(a.valid[:])
	a.tilesValid, a.segs = false, nil
	rb, _ := t.RowBytes(cols)
	if cap(a.quant[t]) < rb*n {
		a.quant[t] = make([]byte, rb*n)
	}
	a.valid[t] = true
	return a.quant[t][:rb*n]
}

// Quantized returns the rows quantized to t (ggml-cpu's run-time rule),
// computing them on first use.
func (a *Activations) Quantized(t gguf.Type) []byte {
	return a.quantized(nil, t)
}

// quantized is Quantized with the rows shared out over p (nil: inline).
func (a *Activations) quantized(p *Pool, t gguf.Type) []byte {
	rb, _ := t.RowBytes(a.Cols)
	if a.valid[t] {
		return a.quant[t][:rb*a.N]
	}
	if cap(a.quant[t]) < rb*a.N {
		a.quant[t] = make([]byte, rb*a.N)
	}
	q := a.quant[t][:rb*a.N]
	task := quantTask{f: formats[t], q: q, x: a.X, rb: rb, cols: a.Cols}
	if p == nil || a.N < 4 {
		task.Do(0, a.N, 0)
	} else {
		p.qt = task
		p.Run(a.N, 1, &p.qt)
		p.qt = quantTask{}
	}
	a.valid[t] = true
	return q
}

// quantTask quantizes activation rows [lo, hi).
type quantTask struct {
	f        *Format
	q        []byte
	x        []float32
	rb, cols int
}

func (t *quantTask) Do(lo, hi, _ int) {
	for i := lo; i < hi; i++ {
		quantizeActivation(t.f, t.q[i*t.rb:(i+1)*t.rb], t.x[i*t.cols:(i+1)*t.cols])
	}
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
	if x.segs != nil {
		panic("kernels: MatMul of segmented activations")
	}
	mm := &p.mm
	mm.out, mm.w, mm.x, mm.n = out[:x.N*w.Rows], w, x.X, x.N
	f := w.format
	mm.dot, mm.dotF32, mm.rows = f.Dot, f.DotF32, true
	if bd := batchDotFor(w, x.N); bd != nil && !batchInvariant {
		mm.dot, mm.rows = bd, false
	}
	if bd := batchDotF32For(w, x.N); bd != nil && !x.Strided && !batchInvariant {
		mm.dotF32 = bd
	}
	if tk := tileKernelFor(w, x.N); tk != nil && f.VecDot == gguf.TypeQ8_K {
		p.tileMatMul(out, w, x, tk)
		mm.out, mm.w, mm.x = nil, nil, nil
		return
	}
	if f.VecDot == gguf.TypeF32 || f.Dot == nil {
		mm.q, mm.qRow = nil, 0
	} else {
		mm.q = x.quantized(p, f.VecDot)
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
	// rows says the quantized dot is the format's own (no batched
	// variant replaces it), so the rows kernels (assembly where the CPU
	// has it) compute it.
	rows bool
}

// rowBlockBytes is how many weight bytes one pass of every token tile
// covers before moving on: small enough to stay in L2 between tiles, so
// that prefill reads each weight from memory once.
const rowBlockBytes = 256 << 10

func (m *matmulTask) Do(lo, hi, _ int) {
	w, cols := m.w, m.w.Cols
	if m.q != nil && m.rows {
		step := max(1, rowBlockBytes/w.RowBytes)
		for r0 := lo; r0 < hi; r0 += step {
			r1 := min(r0+step, hi)
			w.productRows(m.out[r0:], w.Rows, r0, r1, m.q, m.qRow, m.n)
		}
		return
	}
	for t0 := 0; t0 < m.n; t0 += TileTokens {
		t1 := min(t0+TileTokens, m.n)
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
