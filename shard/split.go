package shard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/router"
)

// CoordinatorFile is the name of the coordinator's file in a split's
// output directory; ManifestFile the manifest's.
const (
	CoordinatorFile = "coordinator.gguf"
	ManifestName    = "manifest.json"
)

// ErrSplit is wrapped by errors about split inputs.
var ErrSplit = errors.New("shard: cannot split")

// Manifest describes the files Split wrote.
type Manifest struct {
	Model       string `json:"model"`
	Fingerprint string `json:"fingerprint"`
	Coordinator File   `json:"coordinator"`
	Nodes       []File `json:"nodes"`
}

// File is one written file.
type File struct {
	Node   string `json:"node,omitempty"`
	Addr   string `json:"addr,omitempty"`
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Experts maps each MoE layer to the global expert ids held ("0-7,12").
	Experts map[string]string `json:"experts,omitempty"`
	Tensors int               `json:"tensors"`
}

// SplitConfig says how to split a model.
type SplitConfig struct {
	// Placement gives the nodes and the experts each holds.
	Placement *router.PlacementFile
	// Out is the output directory (made if missing).
	Out string
	// Model names the model in the manifest (its file name).
	Model string
	// Progress, when set, is called after each tensor with the bytes
	// written so far and the total.
	Progress func(done, total int64)
}

// expertNames are the suffixes of a layer's routed expert tensors.
var expertNames = [...]string{"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"}

// Split writes the coordinator file, one file per node of the placement
// and the manifest into cfg.Out, streaming tensor data from the mapped
// model (memory use does not grow with the model). f must be a whole
// model, not a shard. Each file is written under a temporary name and
// renamed when complete.
func Split(ctx context.Context, f *gguf.File, cfg SplitConfig) (*Manifest, error) {
	if cfg.Placement == nil || cfg.Out == "" {
		return nil, fmt.Errorf("%w: a placement and an output directory are needed", ErrSplit)
	}
	if f.Has(gguf.KeyShardRole) {
		return nil, fmt.Errorf("%w: the model is itself a shard (%s); split the whole model", ErrSplit, gguf.KeyShardRole)
	}
	info, err := router.InfoFromFile(f)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	isExpert := map[string]bool{}
	for _, l := range info.MoELayers {
		for _, n := range expertNames {
			isExpert["blk."+strconv.Itoa(l)+"."+n] = true
		}
	}
	base := baseKVs(f)
	// Every shard carries the whole model's expert digests, so each
	// computes the model's fingerprint (over weights, not just shapes)
	// without the data it lacks.
	for _, l := range info.MoELayers {
		for _, n := range expertNames {
			name := "blk." + strconv.Itoa(l) + "." + n
			base = append(base, gguf.KV{Key: gguf.KeyShardHashPrefix + name, Value: gguf.MustValue(info.ExpertHashes[name])})
		}
	}
	fp := gguf.KV{Key: gguf.KeyShardFingerprint, Value: gguf.MustValue(info.Fingerprint)}

	// Work out every file first, so progress knows the total.
	type job struct {
		mf    *File
		kvs   []gguf.KV
		specs []gguf.TensorSpec
		parts [][][]byte
	}
	var jobs []*job
	coord := &job{mf: &File{File: CoordinatorFile}}
	coord.kvs = append(slices.Clone(base), gguf.KV{Key: gguf.KeyShardRole, Value: gguf.MustValue(gguf.ShardCoordinator)}, fp)
	for i := range f.Tensors {
		t := &f.Tensors[i]
		spec := gguf.TensorSpec{Name: t.Name, Type: t.Type, Dims: t.Dims}
		if isExpert[t.Name] {
			// Kept empty: the coordinator learns the experts' types and
			// shapes (its activations are quantized for them).
			spec.Dims = []int64{t.Dims[0], t.Dims[1], 0}
			coord.specs, coord.parts = append(coord.specs, spec), append(coord.parts, nil)
			continue
		}
		coord.specs, coord.parts = append(coord.specs, spec), append(coord.parts, [][]byte{t.Data})
	}
	jobs = append(jobs, coord)
	for _, n := range cfg.Placement.Nodes {
		if strings.ContainsAny(n.Name, "/\\") || n.Name == "" || n.Name == "." || n.Name == ".." ||
			n.Name+".gguf" == CoordinatorFile {
			return nil, fmt.Errorf("%w: node name %q cannot name a file", ErrSplit, n.Name)
		}
		h, err := n.Holdings(info.MoELayers, info.Experts)
		if err != nil {
			return nil, err
		}
		j := &job{mf: &File{Node: n.Name, Addr: n.Addr, File: n.Name + ".gguf", Experts: map[string]string{}}}
		j.kvs = append(slices.Clone(base), gguf.KV{Key: gguf.KeyShardRole, Value: gguf.MustValue(gguf.ShardExpert)},
			gguf.KV{Key: gguf.KeyShardNode, Value: gguf.MustValue(n.Name)}, fp)
		for _, l := range info.MoELayers {
			var ids []uint32
			if set := h[l]; set != nil {
				for _, r := range set.Ranges() {
					for e := r[0]; e <= r[1]; e++ {
						ids = append(ids, uint32(e))
					}
				}
				if len(ids) > 0 {
					j.mf.Experts[strconv.Itoa(l)] = set.String()
					j.kvs = append(j.kvs, gguf.KV{Key: gguf.KeyShardExpertsPrefix + strconv.Itoa(l), Value: gguf.MustValue(ids)})
				}
			}
			for _, name := range expertNames {
				full := "blk." + strconv.Itoa(l) + "." + name
				t, ok := f.Tensor(full)
				if !ok || len(t.Dims) != 3 || t.Dims[2] != int64(info.Experts) {
					return nil, fmt.Errorf("%w: tensor %s missing or not [_, _, %d]", ErrSplit, full, info.Experts)
				}
				per := len(t.Data) / info.Experts
				var parts [][]byte
				for _, e := range ids {
					parts = append(parts, t.Data[int(e)*per:(int(e)+1)*per])
				}
				j.specs = append(j.specs, gguf.TensorSpec{Name: full, Type: t.Type, Dims: []int64{t.Dims[0], t.Dims[1], int64(len(ids))}})
				j.parts = append(j.parts, parts)
			}
		}
		jobs = append(jobs, j)
	}
	var total, done int64
	for _, j := range jobs {
		for _, ps := range j.parts {
			for _, p := range ps {
				total += int64(len(p))
			}
		}
	}
	man := &Manifest{Model: cfg.Model, Fingerprint: info.Fingerprint}
	for _, j := range jobs {
		path := filepath.Join(cfg.Out, j.mf.File)
		n, sum, err := writeFile(ctx, path, j.kvs, j.specs, j.parts, func(b int64) {
			done += b
			if cfg.Progress != nil {
				cfg.Progress(done, total)
			}
		})
		if err != nil {
			return nil, err
		}
		j.mf.Bytes, j.mf.SHA256, j.mf.Tensors = n, sum, len(j.specs)
		if j == coord {
			man.Coordinator = *j.mf
		} else {
			man.Nodes = append(man.Nodes, *j.mf)
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(man); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, ManifestName), b.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return man, nil
}

// baseKVs returns the model's metadata without the keys of a split model
// (each shard is one whole file).
func baseKVs(f *gguf.File) []gguf.KV {
	var out []gguf.KV
	for _, kv := range f.KV {
		if strings.HasPrefix(kv.Key, "split.") || strings.HasPrefix(kv.Key, "ix.shard.") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// writeFile streams one file and returns its size and SHA-256.
func writeFile(ctx context.Context, path string, kvs []gguf.KV, specs []gguf.TensorSpec, parts [][][]byte, progress func(int64)) (n int64, sum string, err error) {
	tmp := path + ".part"
	out, err := os.Create(tmp)
	if err != nil {
		return 0, "", err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	w, err := gguf.NewWriter(cw, kvs, specs)
	if err != nil {
		return 0, "", err
	}
	for _, ps := range parts {
		if err := ctx.Err(); err != nil {
			return 0, "", err
		}
		if err := w.WriteTensorParts(ps); err != nil {
			return 0, "", fmt.Errorf("%s: %w", path, err)
		}
		var b int64
		for _, p := range ps {
			b += int64(len(p))
		}
		progress(b)
	}
	if err := w.Close(); err != nil {
		return 0, "", err
	}
	if err := out.Close(); err != nil {
		return 0, "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, "", err
	}
	return cw.n, hex.EncodeToString(h.Sum(nil)), nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Files returns the coordinator's file and then every node's.
func (m *Manifest) Files() []File {
	return append([]File{m.Coordinator}, m.Nodes...)
}

// Lookup returns the entry of the file named name, or nil.
func (m *Manifest) Lookup(name string) *File {
	if m.Coordinator.File == name {
		return &m.Coordinator
	}
	for i := range m.Nodes {
		if m.Nodes[i].File == name {
			return &m.Nodes[i]
		}
	}
	return nil
}

// Names returns the file names, coordinator first.
func (m *Manifest) Names() []string {
	var out []string
	for _, f := range m.Files() {
		out = append(out, f.File)
	}
	return out
}
