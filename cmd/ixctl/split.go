package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/router"
)

// Metadata keys of shard files (written by split, read by loaders).
const (
	// KeyShardRole is "coordinator" or "expert".
	KeyShardRole = "ix.shard.role"
	// KeyShardNode is the node an expert shard is for.
	KeyShardNode = "ix.shard.node"
	// KeyShardFingerprint is the full model's router fingerprint: shards
	// of one model agree on it though their tensors differ.
	KeyShardFingerprint = "ix.shard.fingerprint"
	// KeyShardExpertsPrefix + layer is the uint32 array of the global
	// expert ids an expert shard holds in that layer, in the order of the
	// re-packed tensors' third dimension.
	KeyShardExpertsPrefix = "ix.shard.experts."
)

// SplitOptions are the inputs of `ixctl split`.
type SplitOptions struct {
	Model      string
	Plan       string
	Out        string
	NoProgress bool
	Output     cli.Output
}

func newSplitCmd(s cli.Streams) *cobra.Command {
	o := &SplitOptions{}
	cmd := &cobra.Command{
		Use:   "split MODEL --plan FILE --out DIR",
		Short: "Cut a MoE model into a coordinator file and one expert file per node",
		Long: `split writes, from a GGUF MoE model and a placement file (ixctl plan --write,
or written by hand: see expertnode --placement), so that each box downloads
only its part:

  DIR/coordinator.gguf   every tensor but the routed experts (attention,
                         norms, gates, shared experts, embeddings, LM head)
  DIR/NODE.gguf          per node: the model's metadata and, per MoE layer,
                         blk.L.ffn_{gate,up,down}_exps.weight holding only the
                         experts the node is assigned, re-packed as 3-D
                         tensors; ix.shard.experts.L lists their global ids
  DIR/manifest.json      each file's node, size, SHA-256 and experts

Data is streamed tensor by tensor from the mapped model; memory use does not
grow with the model.`,
		Example: `  ixctl plan --write placement.json
  ixctl split kimi-k2.gguf --plan placement.json --out shards/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Model = args[0]
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Plan, "plan", "", "placement file (JSON): nodes and the experts each holds")
	f.StringVar(&o.Out, "out", "", "output directory")
	f.BoolVar(&o.NoProgress, "no-progress", false, "no progress bar on stderr")
	cli.AddOutputFlag(cmd, &o.Output)
	return cmd
}

// Validate checks the flags.
func (o *SplitOptions) Validate() error {
	if o.Plan == "" || o.Out == "" {
		return errors.New("--plan FILE and --out DIR are required")
	}
	return nil
}

// Manifest describes the files split wrote.
type Manifest struct {
	Model       string         `json:"model"`
	Fingerprint string         `json:"fingerprint"`
	Coordinator ManifestFile   `json:"coordinator"`
	Nodes       []ManifestFile `json:"nodes"`
}

// ManifestFile is one written file.
type ManifestFile struct {
	Node   string `json:"node,omitempty"`
	Addr   string `json:"addr,omitempty"`
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Experts maps each MoE layer to the global expert ids held ("0-7,12").
	Experts map[string]string `json:"experts,omitempty"`
	Tensors int               `json:"tensors"`
}

// expertNames are the suffixes of a layer's routed expert tensors.
var expertNames = [...]string{"ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"}

// Run splits the model.
func (o *SplitOptions) Run(s cli.Streams) error {
	f, err := gguf.Open(o.Model)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := router.InfoFromFile(f)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Model, err)
	}
	pf, err := router.ReadPlacementFile(o.Plan)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	isExpert := map[string]bool{}
	for _, l := range info.MoELayers {
		for _, n := range expertNames {
			isExpert["blk."+strconv.Itoa(l)+"."+n] = true
		}
	}
	base := baseKVs(f)
	fp := gguf.KV{Key: KeyShardFingerprint, Value: gguf.MustValue(info.Fingerprint)}

	// Work out every file first, so the progress bar knows the total.
	type job struct {
		mf     *ManifestFile
		kvs    []gguf.KV
		specs  []gguf.TensorSpec
		parts  [][][]byte
		dedupe map[string]bool
	}
	var jobs []*job
	coord := &job{mf: &ManifestFile{File: "coordinator.gguf"}}
	coord.kvs = append(slices.Clone(base), gguf.KV{Key: KeyShardRole, Value: gguf.MustValue("coordinator")}, fp)
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if isExpert[t.Name] {
			continue
		}
		coord.specs = append(coord.specs, gguf.TensorSpec{Name: t.Name, Type: t.Type, Dims: t.Dims})
		coord.parts = append(coord.parts, [][]byte{t.Data})
	}
	jobs = append(jobs, coord)
	for _, n := range pf.Nodes {
		h, err := n.Holdings(info.MoELayers, info.Experts)
		if err != nil {
			return err
		}
		if strings.ContainsAny(n.Name, "/\\") || n.Name == "coordinator" || n.Name == "" {
			return fmt.Errorf("node name %q cannot name a file", n.Name)
		}
		j := &job{mf: &ManifestFile{Node: n.Name, Addr: n.Addr, File: n.Name + ".gguf", Experts: map[string]string{}}}
		j.kvs = append(slices.Clone(base), gguf.KV{Key: KeyShardRole, Value: gguf.MustValue("expert")},
			gguf.KV{Key: KeyShardNode, Value: gguf.MustValue(n.Name)}, fp)
		for _, l := range info.MoELayers {
			set := h[l]
			if set == nil || set.Len() == 0 {
				continue
			}
			var ids []uint32
			for _, r := range set.Ranges() {
				for e := r[0]; e <= r[1]; e++ {
					ids = append(ids, uint32(e))
				}
			}
			j.mf.Experts[strconv.Itoa(l)] = set.String()
			j.kvs = append(j.kvs, gguf.KV{Key: KeyShardExpertsPrefix + strconv.Itoa(l), Value: gguf.MustValue(ids)})
			for _, name := range expertNames {
				full := "blk." + strconv.Itoa(l) + "." + name
				t, ok := f.Tensor(full)
				if !ok || len(t.Dims) != 3 {
					return fmt.Errorf("%s: tensor %s missing or not 3-D", o.Model, full)
				}
				per := len(t.Data) / int(t.Dims[2])
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
	update, finish := newProgress(s.Err, "split", o.NoProgress)
	defer finish()
	man := Manifest{Model: filepath.Base(o.Model), Fingerprint: info.Fingerprint}
	for _, j := range jobs {
		path := filepath.Join(o.Out, j.mf.File)
		n, sum, err := writeShard(path, j.kvs, j.specs, j.parts, func(b int64) {
			done += b
			if update != nil {
				update(done, total)
			}
		})
		if err != nil {
			return err
		}
		j.mf.Bytes, j.mf.SHA256, j.mf.Tensors = n, sum, len(j.specs)
		if j == coord {
			man.Coordinator = *j.mf
		} else {
			man.Nodes = append(man.Nodes, *j.mf)
		}
	}
	finish()
	mpath := filepath.Join(o.Out, "manifest.json")
	mfile, err := os.Create(mpath)
	if err != nil {
		return err
	}
	if err := cli.PrintJSON(mfile, man); err != nil {
		mfile.Close()
		return err
	}
	if err := mfile.Close(); err != nil {
		return err
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, man)
	}
	tw := newTable(s.Out)
	fmt.Fprintln(tw, "FILE\tNODE\tTENSORS\tBYTES")
	for _, mf := range append([]ManifestFile{man.Coordinator}, man.Nodes...) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", mf.File, mf.Node, mf.Tensors, humanBytes(mf.Bytes))
	}
	tw.Flush()
	fmt.Fprintf(s.Out, "wrote %s\n", mpath)
	return nil
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

// writeShard streams one file and returns its size and SHA-256.
func writeShard(path string, kvs []gguf.KV, specs []gguf.TensorSpec, parts [][][]byte, progress func(int64)) (n int64, sum string, err error) {
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
	cw := &countWriter{w: io.MultiWriter(out, h), h: h}
	w, err := gguf.NewWriter(cw, kvs, specs)
	if err != nil {
		return 0, "", err
	}
	for _, ps := range parts {
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
	h hash.Hash
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
