package experts

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// StoreConfig selects what a Store holds, how it computes and whether it
// pages.
type StoreConfig struct {
	// Experts limits the experts held: layer -> expert ids. Nil holds
	// every expert of every layer that has expert tensors; a listed layer
	// with an empty slice holds none of its experts (Load adds them).
	Experts map[int][]int
	// Pool runs the matrix products. Nil: NewStore starts a pool of
	// Threads workers (0: one per CPU), which Close stops. A pool passed
	// in stays the caller's: Forward drives it, so the caller must not run
	// other work on it while a Forward is in progress (a model Runner
	// passes its own pool and calls Forward from the goroutine that drives
	// it).
	Pool    *kernels.Pool
	Threads int
	// Pager keeps the held experts' resident bytes under a budget with
	// madvise hints (see PagerConfig). Nil: plain mmap, no advice; the
	// kernel pages the file in and out as it likes.
	Pager *PagerConfig
	// Trace, when set, gets a line per Forward call: the layer, then the
	// ids of the experts the batch used, increasing ("3 7 19 200\n"). It
	// records the access pattern that Simulate replays. Writes happen
	// inside Forward; a bufio.Writer keeps them cheap.
	Trace io.Writer
}

// LocalConfig is StoreConfig's former name.
type LocalConfig = StoreConfig

// Store computes routed experts in-process over the expert tensors of a
// mapped GGUF file (blk.L.ffn_{gate,up,down}_exps.weight: one [ff x embd]
// gate and up matrix and one [embd x ff] down matrix per expert, viewed
// in place, never copied). Expert e of a layer is three byte ranges of the
// mapping, slice e of each tensor; the pager advises the kernel on those
// ranges.
//
// Forward groups a batch's rows by expert, so each expert's weights are
// read once per batch, and computes from the batch's quantized rows (Q)
// where the weights take quantized activations, so a remote node fed the
// same bytes gets the same bits. With a pager, Forward first tells the
// pager which experts it needs (WILLNEED for those not resident), issues
// the prediction for the next MoE layer, computes the resident experts
// first while the others load, then evicts down to the budget.
//
// All methods are safe for concurrent use. Forward calls are serialised
// on the Store's pool and scratch; Load and Release may run during a
// Forward (they wait for it only to change which experts are held). A
// steady stream of batches of the same size allocates nothing.
type Store struct {
	file   *gguf.File
	layers []*localLayer // by layer index; nil where the file has no experts

	mu      sync.Mutex // guards work, held flags and the counters below
	pool    *kernels.Pool
	ownPool bool
	work    localWork

	pager *pager     // nil: plain mmap
	pred  *predictor // nil: no next-layer prediction
	// predMaxRows bounds the batches the prediction runs for.
	predMaxRows int

	trace    io.Writer
	traceBuf []byte

	ioBase   int64 // /proc/self/io read_bytes when the store opened (-1: unknown)
	forwards uint64
	rows     uint64
	fwdTime  time.Duration
	predTime time.Duration
}

// Local is the Store's former name.
type Local = Store

// localLayer is one MoE layer's experts.
type localLayer struct {
	embd, ff int
	gate     []kernels.Matrix // by expert id
	up       []kernels.Matrix
	down     []kernels.Matrix
	held     []bool // guarded by Store.mu
	base     int    // index of expert 0 in the pager's table
}

// expertTensors are the names of a layer's expert tensors.
func expertTensors(layer int) (gate, up, down string) {
	p := "blk." + strconv.Itoa(layer) + "."
	return p + "ffn_gate_exps.weight", p + "ffn_up_exps.weight", p + "ffn_down_exps.weight"
}

// NewLocal is NewStore under its former name.
func NewLocal(f *gguf.File, cfg StoreConfig) (*Store, error) { return NewStore(f, cfg) }

// NewStore indexes the expert tensors of f and holds the experts cfg
// selects. It checks that each layer's gate, up and down tensors exist and
// agree in shape ([embd, ff, n], [embd, ff, n], [ff, embd, n]), naming the
// tensor when one does not. With cfg.Pager it advises MADV_RANDOM on the
// expert tensors and loads the pinned experts.
func NewStore(f *gguf.File, cfg StoreConfig) (*Store, error) {
	nLayers := 0
	for i := range f.Tensors {
		var l int
		var rest string
		if n, _ := fmt.Sscanf(f.Tensors[i].Name, "blk.%d.%s", &l, &rest); n == 2 && l >= nLayers {
			nLayers = l + 1
		}
	}
	for l := range cfg.Experts {
		if l < 0 || l >= nLayers {
			return nil, fmt.Errorf("%w: layer %d (the model has %d)", ErrUnknownExpert, l, nLayers)
		}
	}
	s := &Store{file: f, layers: make([]*localLayer, nLayers), trace: cfg.Trace, ioBase: -1}
	base := 0
	for l := 0; l < nLayers; l++ {
		gn, un, dn := expertTensors(l)
		gt, okG := f.Tensor(gn)
		ut, okU := f.Tensor(un)
		dt, okD := f.Tensor(dn)
		want, listed := cfg.Experts[l]
		if !okG && !okU && !okD {
			if listed {
				return nil, fmt.Errorf("%w: layer %d has no expert tensors (%s)", ErrUnknownExpert, l, gn)
			}
			continue
		}
		ly, err := newLocalLayer(gt, ut, dt, gn, un, dn)
		if err != nil {
			return nil, err
		}
		for e := range ly.held {
			if err := ly.view(e, gt, ut, dt); err != nil {
				return nil, err
			}
		}
		n := len(ly.held)
		if cfg.Experts == nil {
			for e := range ly.held {
				ly.held[e] = true
			}
		}
		for _, e := range want {
			if e < 0 || e >= n {
				return nil, fmt.Errorf("%w: expert %d of layer %d (it has %d)", ErrUnknownExpert, e, l, n)
			}
			ly.held[e] = true
		}
		ly.base = base
		base += n
		s.layers[l] = ly
	}
	if cfg.Pager != nil {
		pc := *cfg.Pager
		if err := pc.Validate(); err != nil {
			return nil, err
		}
		p, err := newFilePager(f, s.layers, pc)
		if err != nil {
			return nil, err
		}
		s.pager = p
		if pc.Predict {
			if s.pred, err = newPredictor(f, s.layers, pc.PredictTop); err != nil {
				p.close()
				return nil, err
			}
			s.predMaxRows = pc.PredictMaxRows
		}
	}
	if cfg.Pool != nil {
		s.pool = cfg.Pool
	} else {
		s.pool, s.ownPool = kernels.NewPool(cfg.Threads), true
	}
	if n, err := readIOBytes(); err == nil {
		s.ioBase = n
	}
	return s, nil
}

func newLocalLayer(gt, ut, dt *gguf.Tensor, gn, un, dn string) (*localLayer, error) {
	for _, c := range []struct {
		t    *gguf.Tensor
		name string
	}{{gt, gn}, {ut, un}, {dt, dn}} {
		if c.t == nil {
			return nil, fmt.Errorf("experts: missing tensor %s", c.name)
		}
		if len(c.t.Dims) != 3 {
			return nil, fmt.Errorf("experts: tensor %s has shape %s, want 3 dimensions", c.name, c.t.Shape())
		}
	}
	embd, ff, n := gt.Dims[0], gt.Dims[1], gt.Dims[2]
	if !slices.Equal(ut.Dims, gt.Dims) {
		return nil, fmt.Errorf("experts: tensor %s has shape %s, want %s like %s", un, ut.Shape(), gt.Shape(), gn)
	}
	if dt.Dims[0] != ff || dt.Dims[1] != embd || dt.Dims[2] != n {
		return nil, fmt.Errorf("experts: tensor %s has shape %s, want [%d, %d, %d]", dn, dt.Shape(), ff, embd, n)
	}
	return &localLayer{
		embd: int(embd), ff: int(ff),
		gate: make([]kernels.Matrix, n), up: make([]kernels.Matrix, n), down: make([]kernels.Matrix, n),
		held: make([]bool, n),
	}, nil
}

// view makes expert e's matrices: slice e of each 3-D tensor.
func (ly *localLayer) view(e int, gt, ut, dt *gguf.Tensor) error {
	var err error
	mat := func(t *gguf.Tensor, rows, cols int) kernels.Matrix {
		if err != nil {
			return kernels.Matrix{}
		}
		data, _ := expertSlice(t, e)
		m, merr := kernels.NewMatrix(t.Type, rows, cols, data)
		if merr != nil {
			err = fmt.Errorf("experts: tensor %s: %w", t.Name, merr)
		}
		return m
	}
	ly.gate[e] = mat(gt, ly.ff, ly.embd)
	ly.up[e] = mat(ut, ly.ff, ly.embd)
	ly.down[e] = mat(dt, ly.embd, ly.ff)
	return err
}

// expertSlice returns expert e's bytes of a 3-D expert tensor and their
// offset from the start of the tensor's data.
func expertSlice(t *gguf.Tensor, e int) ([]byte, int64) {
	size := len(t.Data) / int(t.Dims[2])
	return t.Data[e*size : (e+1)*size : (e+1)*size], int64(e * size)
}

// Close stops the pool NewStore started (not a pool passed in) and closes
// the pager's file handles. The Store must not be used afterwards.
func (s *Store) Close() {
	if s.ownPool {
		s.pool.Close()
	}
	if s.pager != nil {
		s.pager.close()
	}
}

// layer returns layer l, or nil.
func (s *Store) layer(l int) *localLayer {
	if l < 0 || l >= len(s.layers) {
		return nil
	}
	return s.layers[l]
}

// Holds reports whether the Store holds expert e of layer l.
func (s *Store) Holds(l, e int) bool {
	ly := s.layer(l)
	if ly == nil || e < 0 || e >= len(ly.held) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return ly.held[e]
}

// Forward implements Backend. A model file truncated or rewritten while
// mapped fails it with an error wrapping gguf.ErrFileChanged.
func (s *Store) Forward(ctx context.Context, layer int, b *Batch, out []float32) (err error) {
	defer gguf.CatchFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if err := ctx.Err(); err != nil {
		return err
	}
	ly := s.layer(layer)
	if ly == nil {
		return fmt.Errorf("%w: layer %d holds no experts here", ErrUnknownExpert, layer)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ly.check(layer, b, out); err != nil {
		return err
	}
	if b.N == 0 {
		return nil
	}
	start := time.Now()
	w := &s.work
	w.group(ly, b)
	if s.trace != nil {
		s.writeTrace(layer, w.active)
	}
	if s.pager != nil {
		// Resident experts move to the front of w.active, so they are
		// computed while the others load.
		s.pager.begin(layer, ly.base, w.active)
		defer s.pager.end(ly.base, w.active)
		if s.pred != nil && b.N <= s.predMaxRows {
			t := time.Now()
			next, ids := s.pred.predict(s.pool, layer, b)
			s.predTime += time.Since(t)
			if next >= 0 {
				nly := s.layers[next]
				held := ids[:0]
				for _, e := range ids {
					if nly.held[e] {
						held = append(held, e)
					}
				}
				s.pager.prefetch(next, nly.base, held)
			}
		}
	}
	defer w.release()
	err = s.compute(ctx, ly, b, out)
	s.forwards++
	s.rows += uint64(b.N)
	s.fwdTime += time.Since(start)
	return err
}

// compute runs the grouped batch in s.work.
func (s *Store) compute(ctx context.Context, ly *localLayer, b *Batch, out []float32) error {
	w := &s.work
	if err := w.prepare(s.pool); err != nil {
		return err
	}
	// gate and up, then SwiGLU: one unit per (active expert, block of
	// tileRows ff rows).
	s.pool.Run(len(w.active)*((ly.ff+tileRows-1)/tileRows), 1, &w.gateUp)
	if err := ctx.Err(); err != nil {
		return err
	}
	s.pool.Run(b.N*b.K, 1, &w.swiglu)
	// The down projection's activations, quantized (and packed) per expert.
	w.prepareDown()
	s.pool.Run(len(w.active)*((ly.embd+tileRows-1)/tileRows), 1, &w.down)
	w.combine(out[:b.N*b.Embd])
	return nil
}

// writeTrace appends a trace line; write errors are dropped (the trace is
// a measurement aid).
func (s *Store) writeTrace(layer int, active []int32) {
	buf := strconv.AppendInt(s.traceBuf[:0], int64(layer), 10)
	for _, e := range active {
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, int64(e), 10)
	}
	buf = append(buf, '\n')
	s.traceBuf = buf
	s.trace.Write(buf)
}

// check validates a batch against the layer.
func (ly *localLayer) check(layer int, b *Batch, out []float32) error {
	switch {
	case b.N < 0 || b.K <= 0:
		return fmt.Errorf("experts: batch of %d rows with %d experts each", b.N, b.K)
	case b.Embd != ly.embd:
		return fmt.Errorf("experts: layer %d rows are %d wide, batch has %d", layer, ly.embd, b.Embd)
	case len(b.X) < b.N*b.Embd || len(out) < b.N*b.Embd:
		return fmt.Errorf("experts: batch of %d rows of %d needs %d values (x %d, out %d)", b.N, b.Embd, b.N*b.Embd, len(b.X), len(out))
	case len(b.Experts) < b.N*b.K || len(b.Weights) < b.N*b.K:
		return fmt.Errorf("experts: batch of %d rows x %d experts has %d expert ids and %d weights", b.N, b.K, len(b.Experts), len(b.Weights))
	}
	if b.Q != nil {
		rb := kernels.ActivationBytes(b.QType, b.Embd)
		if rb == 0 || len(b.Q) != b.N*rb {
			return fmt.Errorf("experts: quantized rows: %d bytes of %v for %d rows of %d", len(b.Q), b.QType, b.N, b.Embd)
		}
	}
	for _, e := range b.Experts[:b.N*b.K] {
		if e < 0 || int(e) >= len(ly.held) || !ly.held[e] {
			return fmt.Errorf("%w: expert %d of layer %d", ErrUnknownExpert, e, layer)
		}
	}
	return nil
}

// checkIDs validates a Load or Release request.
func (s *Store) checkIDs(layer int, ids []int) (*localLayer, error) {
	ly := s.layer(layer)
	if ly == nil {
		return nil, fmt.Errorf("%w: layer %d has no experts", ErrUnknownExpert, layer)
	}
	for _, e := range ids {
		if e < 0 || e >= len(ly.held) {
			return nil, fmt.Errorf("%w: expert %d of layer %d (it has %d)", ErrUnknownExpert, e, layer, len(ly.held))
		}
	}
	return ly, nil
}

// Load adds experts ids of layer to the held set and returns once their
// bytes are in memory (it reads every page), or when ctx ends. With a
// pager they count against the budget like experts just used (pinned
// ones stay pinned); a budget smaller than the load evicts the least
// valuable experts, possibly some of these. Safe during Forward. A model
// file truncated underneath fails it with gguf.ErrFileChanged.
func (s *Store) Load(ctx context.Context, layer int, ids []int) (err error) {
	defer gguf.CatchFault(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	ly, err := s.checkIDs(layer, ids)
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, e := range ids {
		ly.held[e] = true
	}
	s.mu.Unlock()
	if s.pager != nil {
		s.pager.load(ly.base, ids)
	}
	var sum byte
	for _, e := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, m := range []*kernels.Matrix{&ly.gate[e], &ly.up[e], &ly.down[e]} {
			sum ^= touchPages(m.Data)
		}
	}
	touchSink.Add(uint32(sum))
	return nil
}

// Release drops experts ids of layer from the held set (Forward refuses
// them afterwards; a Forward in progress finishes first) and, with a
// pager, evicts them from memory, pinned or not. Safe during Forward.
func (s *Store) Release(ctx context.Context, layer int, ids []int) error {
	ly, err := s.checkIDs(layer, ids)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	for _, e := range ids {
		ly.held[e] = false
	}
	s.mu.Unlock()
	if s.pager != nil {
		s.pager.release(ly.base, ids)
	}
	return nil
}

// touchSink keeps touchPages' reads from being optimised away.
var touchSink atomic.Uint32

// touchPages reads one byte of every page of b, faulting it in.
func touchPages(b []byte) byte {
	var x byte
	for i := 0; i < len(b); i += pageSize {
		x ^= b[i]
	}
	if len(b) > 0 {
		x ^= b[len(b)-1]
	}
	return x
}

// Stats returns the store's counters: the pager's residency, hits, misses
// and prediction accuracy (zero without a pager), the bytes this process
// read from disk since the store opened, and the time spent in Forward.
// It reads /proc/self/io; it is meant for reports, not for every token.
func (s *Store) Stats() Stats {
	var st Stats
	if s.pager != nil {
		st = s.pager.stats()
	}
	s.mu.Lock()
	st.Forwards, st.Rows, st.ForwardTime, st.PredictTime = s.forwards, s.rows, s.fwdTime, s.predTime
	s.mu.Unlock()
	st.ReadBytes = -1
	if n, err := readIOBytes(); err == nil && s.ioBase >= 0 {
		st.ReadBytes = n - s.ioBase
	}
	for _, ly := range s.layers {
		if ly == nil {
			continue
		}
		st.ExpertBytes += ly.bytes(0) * int64(len(ly.held))
	}
	return st
}

// bytes returns expert e's size: its gate, up and down matrices.
func (ly *localLayer) bytes(e int) int64 {
	return int64(len(ly.gate[e].Data) + len(ly.up[e].Data) + len(ly.down[e].Data))
}

// ResidentBytes asks the kernel (mincore) how many bytes of the held
// experts' data are in the page cache now, whatever the pager believes.
// It walks every expert page: a report, not a per-token call.
func (s *Store) ResidentBytes() (int64, error) {
	var vec []byte
	var n int64
	for _, ly := range s.layers {
		if ly == nil {
			continue
		}
		s.mu.Lock()
		held := slices.Clone(ly.held)
		s.mu.Unlock()
		for e, h := range held {
			if !h {
				continue
			}
			for _, m := range []*kernels.Matrix{&ly.gate[e], &ly.up[e], &ly.down[e]} {
				r, err := residentBytes(m.Data, &vec)
				if err != nil {
					return 0, err
				}
				n += r
			}
		}
	}
	return n, nil
}
