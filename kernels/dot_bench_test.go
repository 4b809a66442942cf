package kernels

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/inference-x/inference-x/gguf"
)

// benchMatrixBytes is the weight size of the mat-vec benchmarks: far
// larger than any cache (IX_BENCH_MB overrides, in MiB).
func benchMatrixBytes() int {
	if s := os.Getenv("IX_BENCH_MB"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n << 20
		}
	}
	return 1 << 30
}

// benchMatrix returns a matrix of t with 4096 columns (IX_BENCH_COLS
// sets another multiple of 256) and about size bytes of random (but
// finite) blocks, and a quantized activation row.
func benchMatrix(b *testing.B, t gguf.Type, size int) (*Matrix, []byte) {
	cols := 4096
	if c, err := strconv.Atoi(os.Getenv("IX_BENCH_COLS")); err == nil && c > 0 && c%256 == 0 {
		cols = c
	}
	f, _ := Lookup(t)
	rb, _ := t.RowBytes(cols)
	rows := max(1, size/rb)
	data := make([]byte, rows*rb)
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, cols)
	tmpl := make([]byte, 16*rb)
	for r := 0; r < 16; r++ {
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		f.Quantize(tmpl[r*rb:(r+1)*rb], x, nil)
	}
	for r := 0; r < rows; r++ {
		copy(data[r*rb:], tmpl[(r%16)*rb:(r%16+1)*rb])
	}
	m, err := NewMatrix(t, rows, cols, data)
	if err != nil {
		b.Fatal(err)
	}
	ab, _ := f.VecDot.RowBytes(cols)
	a := make([]byte, ab*TileTokens)
	for tk := 0; tk < TileTokens; tk++ {
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		if err := QuantizeActivation(f.VecDot, a[tk*ab:(tk+1)*ab], x); err != nil {
			b.Fatal(err)
		}
	}
	return &m, a
}

// BenchmarkMatVec reports the weight GB/s of one mat-vec over a matrix far
// larger than cache, for every type with assembly kernels, on 1 and 2
// threads, and that rate as a percentage of the read bandwidth measured the
// same way (readBandwidth) on the same number of threads.
func BenchmarkMatVec(b *testing.B) {
	size := benchMatrixBytes()
	for t := range variants {
		typ := gguf.Type(t)
		if len(variants[t]) == 0 {
			continue
		}
		m, a := benchMatrix(b, typ, size)
		ab, _ := m.format.VecDot.RowBytes(m.Cols)
		for _, threads := range []int{1, 2} {
			b.Run(typ.String()+"/"+Accelerated(typ)+"/t"+strconv.Itoa(threads), func(b *testing.B) {
				p := NewPool(threads)
				defer p.Close()
				var acts Activations
				out := make([]float32, m.Rows)
				acts.Reset(make([]float32, m.Cols), 1, m.Cols)
				copy(acts.Quantized(m.format.VecDot), a[:ab])
				b.SetBytes(int64(len(m.Data)))
				start := time.Now()
				for b.Loop() {
					p.MatMul(out, m, &acts)
				}
				gbps := float64(len(m.Data)) * float64(b.N) / time.Since(start).Seconds() / 1e9
				b.ReportMetric(100*gbps/readBandwidth(b, threads, size), "%read-bw")
			})
		}
		m.Data = nil
	}
}

// readBandwidths caches readBandwidth per thread count.
var readBandwidths = map[int]float64{}

// readBandwidth returns the best of five streaming reads of size bytes on
// threads threads, in GB/s.
func readBandwidth(b *testing.B, threads, size int) float64 {
	if bw, ok := readBandwidths[threads]; ok {
		return bw
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	p := NewPool(threads)
	defer p.Close()
	r := &readTask{buf: buf}
	best := 0.0
	for i := 0; i < 5; i++ {
		start := time.Now()
		p.Run(len(buf)/readChunk, 1, r)
		best = max(best, float64(len(buf))/time.Since(start).Seconds()/1e9)
	}
	readBandwidths[threads] = best
	b.Logf("read bandwidth, %d threads: %.1f GB/s", threads, best)
	return best
}

// BenchmarkReadBandwidth streams the same size of memory with plain 512-bit
// loads and the kernels' prefetch: the ceiling of a memory-bound mat-vec.
func BenchmarkReadBandwidth(b *testing.B) {
	buf := make([]byte, benchMatrixBytes())
	for i := range buf {
		buf[i] = byte(i)
	}
	for _, threads := range []int{1, 2} {
		b.Run("t"+strconv.Itoa(threads), func(b *testing.B) {
			p := NewPool(threads)
			defer p.Close()
			r := &readTask{buf: buf}
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				p.Run(len(buf)/readChunk, 1, r)
			}
		})
	}
}

const readChunk = 1 << 20

type readTask struct{ buf []byte }

func (r *readTask) Do(lo, hi, _ int) {
	sinkU64 ^= readBytes(r.buf[lo*readChunk : hi*readChunk])
}

var sinkU64 uint64
