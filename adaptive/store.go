package adaptive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/quantize"
)

// Sidecar metadata: what a sidecar copy was made from, checked before reuse.
const (
	keySourceName  = "adaptive.source.name"
	keySourceSize  = "adaptive.source.size"
	keySourceMtime = "adaptive.source.mtime_ns"
	keyLayer       = "adaptive.layer"
	keyType        = "adaptive.type"
)

// TensorCopy is one tensor of a layer copy.
type TensorCopy struct {
	Name string
	From gguf.Type // the base type
	To   gguf.Type // the type really used (From when the base is kept)
	// Note says why To is not the requested type: llama.cpp's fallback
	// for row lengths the type's blocks do not divide, or "kept base"
	// when the type would not be smaller than the base.
	Note string
	// BaseBytes and Bytes are the tensor's size in the base and in To.
	BaseBytes, Bytes int64
}

// Replaced reports whether the copy holds this tensor (else the base serves).
func (t TensorCopy) Replaced() bool { return t.To != t.From }

// Copy is one layer requantized to one type.
type Copy struct {
	Layer   int
	Want    gguf.Type
	Tensors []TensorCopy // the layer's quantizable tensors
	// Verbatim are the layer's other tensors (norms, router, biases),
	// copied byte for byte into the copy's file so that a layer served by
	// the copy reads nothing from the base's pages: those small vectors
	// share pages (and the kernel's fault-around window) with the big
	// tensors being released, and reading them maps those back.
	Verbatim []string
	// Variant is the layer over the copy; nil when no tensor got smaller
	// (the base serves the layer).
	Variant *model.Variant
	// Bytes is what the copy holds; BaseBytes what those tensors take in
	// the base file.
	Bytes, BaseBytes int64
	// Sidecar is the copy's file ("" in RAM); Reused is true when it was
	// made by an earlier run.
	Sidecar string
	Reused  bool
	Took    time.Duration

	file *gguf.File
}

// Types returns the distinct types the copy really uses, in order of
// first appearance.
func (c *Copy) Types() []gguf.Type {
	var out []gguf.Type
	for _, t := range c.Tensors {
		if t.Replaced() && !slices.Contains(out, t.To) {
			out = append(out, t.To)
		}
	}
	return out
}

// Store makes lower-precision copies of a model's layers on first request
// and keeps them: in RAM, or as sidecar GGUF files in a directory (mapped,
// reused across runs while the model file's size and modification time
// are unchanged). It never writes the model file. Safe for concurrent use.
type Store struct {
	m       *model.Model
	info    quantize.ModelInfo
	dir     string // "" for RAM
	threads int
	source  os.FileInfo // the model's first file (sidecar identity)

	mu     sync.Mutex
	copies map[copyKey]*Copy
}

type copyKey struct {
	layer int
	t     gguf.Type
}

// NewStore makes a Store for m: cache "" or "ram" keeps copies in memory,
// anything else is a directory for sidecar files.
func NewStore(m *model.Model, cache string, threads int) (*Store, error) {
	info, err := quantize.ModelInfoFromFile(m.File)
	if err != nil {
		return nil, err
	}
	s := &Store{m: m, info: info, threads: threads, copies: map[copyKey]*Copy{}}
	if cache != "" && cache != "ram" {
		paths := m.File.Paths()
		if len(paths) == 0 {
			return nil, errors.New("adaptive: sidecar copies need a model opened from a file")
		}
		if s.source, err = os.Stat(paths[0]); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(cache, 0o755); err != nil {
			return nil, fmt.Errorf("adaptive: sidecar directory: %w", err)
		}
		s.dir = cache
	}
	return s, nil
}

// Close unmaps the sidecar copies. Variants of the store must not be used
// afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.copies {
		if c.file != nil {
			errs = append(errs, c.file.Close())
		}
	}
	s.copies = map[copyKey]*Copy{}
	return errors.Join(errs...)
}

// Copies returns the copies made so far, by layer then type.
func (s *Store) Copies() []*Copy {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Copy
	for _, c := range s.copies {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Copy) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return int(a.Want) - int(b.Want)
	})
	return out
}

// Get returns layer l requantized to t, making it on first call (which
// blocks the caller for as long as requantizing the layer takes).
func (s *Store) Get(ctx context.Context, l int, t gguf.Type) (*Copy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := copyKey{l, t}
	if c, ok := s.copies[k]; ok {
		return c, nil
	}
	c, err := s.make(ctx, l, t)
	if err != nil {
		return nil, fmt.Errorf("adaptive: layer %d as %v: %w", l, t, err)
	}
	s.copies[k] = c
	return c, nil
}

// make plans and builds one copy.
func (s *Store) make(ctx context.Context, l int, want gguf.Type) (*Copy, error) {
	start := time.Now()
	c := &Copy{Layer: l, Want: want}
	var base []*gguf.Tensor
	var infos []quantize.TensorInfo
	for i := range s.m.File.Tensors {
		t := &s.m.File.Tensors[i]
		if n, ok := layerOf(t.Name); ok && n == l {
			base = append(base, t)
			infos = append(infos, quantize.TensorInfo{Name: t.Name, Type: t.Type, Dims: t.Dims})
		}
	}
	if len(base) == 0 {
		return nil, fmt.Errorf("the model has no tensors for layer %d", l)
	}
	target, err := quantize.ParseTarget(want.String(), true)
	if err != nil {
		return nil, err
	}
	// A pure target: every quantizable tensor gets want, or llama.cpp's
	// fallback when its rows are not a whole number of want's blocks.
	plan, err := quantize.NewPlan(s.info, target, false, infos)
	if err != nil {
		return nil, err
	}
	if err := quantize.CheckPlan(plan, false); err != nil {
		return nil, err
	}
	var specs []gguf.TensorSpec
	var src []*gguf.Tensor
	for i, ch := range plan.Choices {
		if !ch.Quantizable {
			continue
		}
		t := base[i]
		tc := TensorCopy{Name: t.Name, From: t.Type, To: ch.To, Note: ch.Fallback, BaseBytes: t.Size}
		size, err := quantize.TensorBytes(ch.To, t.Dims)
		if err != nil {
			return nil, err
		}
		if size >= t.Size {
			tc.Note = strings.TrimPrefix(tc.Note+"; ", "; ") + fmt.Sprintf("kept base: %v is not smaller than %v", ch.To, t.Type)
			tc.To = t.Type
		}
		if tc.Replaced() {
			tc.Bytes = size
			c.Bytes += size
			c.BaseBytes += t.Size
			specs = append(specs, gguf.TensorSpec{Name: t.Name, Type: ch.To, Dims: t.Dims})
			src = append(src, t)
		} else {
			tc.Bytes = t.Size
		}
		c.Tensors = append(c.Tensors, tc)
	}
	if len(specs) == 0 {
		c.Took = time.Since(start)
		return c, nil
	}
	for i, ch := range plan.Choices {
		if !ch.Quantizable {
			t := base[i]
			specs = append(specs, gguf.TensorSpec{Name: t.Name, Type: t.Type, Dims: t.Dims})
			src = append(src, t)
			c.Verbatim = append(c.Verbatim, t.Name)
			c.Bytes += t.Size
			c.BaseBytes += t.Size
		}
	}
	if s.dir != "" {
		err = s.sidecar(ctx, c, specs, src)
	} else {
		var buf bytes.Buffer
		buf.Grow(int(c.Bytes) + 1<<16)
		if err = s.write(ctx, &buf, c, specs, src); err == nil {
			c.file, err = gguf.Parse(buf.Bytes())
		}
	}
	if err != nil {
		return nil, err
	}
	vs, err := s.m.Variants(c.file)
	if err != nil {
		return nil, err
	}
	if len(vs) != 1 || vs[0].Layer() != l {
		return nil, fmt.Errorf("copy of layer %d built %d variants", l, len(vs))
	}
	c.Variant = vs[0]
	c.Took = time.Since(start)
	return c, nil
}

// write requantizes src into specs' types as a GGUF on w. Quantized bases
// go through dequantize -> quantize (Q8_0 -> Q2_K is not a direct map).
func (s *Store) write(ctx context.Context, w interface{ Write([]byte) (int, error) }, c *Copy, specs []gguf.TensorSpec, src []*gguf.Tensor) error {
	arch, _ := s.m.File.Architecture()
	kvs := []gguf.KV{
		{Key: gguf.KeyArchitecture, Value: gguf.MustValue(arch)},
		{Key: keyLayer, Value: gguf.MustValue(uint32(c.Layer))},
		{Key: keyType, Value: gguf.MustValue(c.Want.String())},
	}
	if s.source != nil {
		kvs = append(kvs,
			gguf.KV{Key: keySourceName, Value: gguf.MustValue(s.source.Name())},
			gguf.KV{Key: keySourceSize, Value: gguf.MustValue(s.source.Size())},
			gguf.KV{Key: keySourceMtime, Value: gguf.MustValue(s.source.ModTime().UnixNano())})
	}
	gw, err := gguf.NewWriter(w, kvs, specs)
	if err != nil {
		return err
	}
	conv := quantize.Converter{Threads: s.threads}
	var buf []byte
	for i, spec := range specs {
		t := src[i]
		if spec.Type == t.Type { // a verbatim tensor
			if err := gw.WriteTensor(t.Data); err != nil {
				return err
			}
			continue
		}
		size, _ := quantize.TensorBytes(spec.Type, spec.Dims)
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		out := buf[:size]
		cols := int(t.Dims[0])
		dec, err := quantize.DecodeSource(t.Type, cols, t.Data)
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		if err := conv.Convert(ctx, spec.Type, cols, int(t.Rows()), dec, nil, out); err != nil {
			return fmt.Errorf("%s to %v: %w", t.Name, spec.Type, err)
		}
		if err := gw.WriteTensor(out); err != nil {
			return err
		}
	}
	return gw.Close()
}

// sidecarPath names the copy of layer l in t beside other sidecars.
func (s *Store) sidecarPath(l int, t gguf.Type) string {
	base := strings.TrimSuffix(s.source.Name(), ".gguf")
	return filepath.Join(s.dir, base+".blk"+strconv.Itoa(l)+"."+t.String()+".gguf")
}

// sidecar maps the copy's sidecar file, writing it first unless a file
// made from the same model file with the same tensors is there.
func (s *Store) sidecar(ctx context.Context, c *Copy, specs []gguf.TensorSpec, src []*gguf.Tensor) error {
	path := s.sidecarPath(c.Layer, c.Want)
	c.Sidecar = path
	if f, err := gguf.Open(path); err == nil {
		if s.matches(f, specs) {
			c.file, c.Reused = f, true
			return nil
		}
		f.Close()
	}
	tmp, err := os.CreateTemp(s.dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = s.write(ctx, tmp, c, specs, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	c.file, err = gguf.Open(path)
	return err
}

// matches reports whether a sidecar was made from this model file and
// holds exactly specs.
func (s *Store) matches(f *gguf.File, specs []gguf.TensorSpec) bool {
	name, _ := f.String(keySourceName)
	size, _ := f.Int(keySourceSize)
	mtime, _ := f.Int(keySourceMtime)
	if name != s.source.Name() || size != s.source.Size() || mtime != s.source.ModTime().UnixNano() || len(f.Tensors) != len(specs) {
		return false
	}
	for _, sp := range specs {
		t, ok := f.Tensor(sp.Name)
		if !ok || t.Type != sp.Type || !slices.Equal(t.Dims, sp.Dims) {
			return false
		}
	}
	return true
}

// layerOf parses N from "blk.N.".
func layerOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	dot := strings.IndexByte(rest, '.')
	if dot <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(rest[:dot])
	return n, err == nil && n >= 0
}
