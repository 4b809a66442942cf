// Package commands holds the cobra commands that more than one binary
// offers (inspect is in both coordinator and ixctl). Each constructor takes
// the streams to write to; logic lives in the library packages.
package commands

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
)

// InspectOptions are the inputs of `inspect`.
type InspectOptions struct {
	Path   string
	Output cli.Output
	// ArrayLimit is how many elements of an array metadata value to show.
	ArrayLimit int
}

// NewInspectCmd returns the `inspect MODEL.gguf` command.
func NewInspectCmd(s cli.Streams) *cobra.Command {
	o := &InspectOptions{ArrayLimit: 8}
	cmd := &cobra.Command{
		Use:   "inspect MODEL.gguf",
		Short: "Print a GGUF file's architecture, hyperparameters, metadata and tensors",
		Long: `inspect opens a GGUF file (or the first part of a split model) and prints
its architecture, key hyperparameters, every metadata key (long arrays are
summarised) and a table of tensors with type, shape and bytes.

Exit status 1 with a one-line error for a file that is not valid GGUF.`,
		Example: `  coordinator inspect model.gguf
  coordinator inspect model.gguf -o json | jq '.tensors | length'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Path = args[0]
			return o.Run(s.Out)
		},
	}
	cli.AddOutputFlag(cmd, &o.Output)
	cmd.Flags().IntVar(&o.ArrayLimit, "array-limit", o.ArrayLimit, "array elements to show per metadata value")
	return cmd
}

// InspectReport is the JSON shape of `inspect -o json`.
type InspectReport struct {
	Path            string         `json:"path"`
	Parts           []string       `json:"parts"`
	Version         uint32         `json:"version"`
	Architecture    string         `json:"architecture"`
	Alignment       int            `json:"alignment"`
	DataOffset      int64          `json:"data_offset"`
	FileSize        int64          `json:"file_size"`
	TensorCount     int            `json:"tensor_count"`
	TensorBytes     int64          `json:"tensor_bytes"`
	Hyperparameters map[string]any `json:"hyperparameters"`
	Metadata        []MetaEntry    `json:"metadata"`
	Tensors         []TensorEntry  `json:"tensors"`
}

// MetaEntry is one metadata key; arrays carry their length and a head.
type MetaEntry struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"`
	Len   *int   `json:"len,omitempty"`
	Head  any    `json:"head,omitempty"`
}

// TensorEntry is one row of the tensor table.
type TensorEntry struct {
	Name   string  `json:"name"`
	Type   string  `json:"type"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
	Bytes  int64   `json:"bytes"`
	Split  int     `json:"split,omitempty"`
}

// hyperKeys are the architecture-prefixed keys worth a line of their own.
var hyperKeys = []string{
	"context_length", "embedding_length", "block_count", "feed_forward_length",
	"attention.head_count", "attention.head_count_kv", "attention.key_length", "attention.value_length",
	"attention.layer_norm_rms_epsilon", "rope.freq_base", "rope.dimension_count", "rope.scaling.type",
	"rope.scaling.factor", "expert_count", "expert_used_count", "expert_shared_count",
	"expert_feed_forward_length", "leading_dense_block_count", "attention.q_lora_rank",
	"attention.kv_lora_rank", "expert_gating_func", "expert_weights_scale", "expert_weights_norm",
	"expert_group_count", "expert_group_used_count", "vocab_size",
}

// Report builds the inspect report of an open file.
func Report(path string, f *gguf.File, limit int) InspectReport {
	arch, _ := f.Architecture()
	r := InspectReport{
		Path: path, Parts: f.Paths(), Version: f.Version, Architecture: arch,
		Alignment: f.Alignment, DataOffset: f.DataOffset(0), TensorCount: len(f.Tensors),
		Hyperparameters: map[string]any{},
	}
	for i := 0; i < f.Parts(); i++ {
		r.FileSize += f.FileSize(i)
	}
	for _, k := range hyperKeys {
		if v, ok := f.Value(arch + "." + k); ok {
			r.Hyperparameters[k] = v.Any
		}
	}
	if toks, err := f.Array("tokenizer.ggml.tokens"); err == nil {
		r.Hyperparameters["n_vocab"] = toks.Len()
	}
	for _, kv := range f.KV {
		e := MetaEntry{Key: kv.Key, Type: kv.Value.Type.String()}
		if a, ok := kv.Value.Any.(gguf.Array); ok {
			n := a.Len()
			e.Type = "array of " + a.Elem.String()
			e.Len = &n
			e.Head = arrayHead(a, limit)
		} else {
			e.Value = kv.Value.Any
		}
		r.Metadata = append(r.Metadata, e)
	}
	for _, t := range f.Tensors {
		r.TensorBytes += t.Size
		r.Tensors = append(r.Tensors, TensorEntry{t.Name, t.Type.String(), t.Dims, t.Offset, t.Size, t.Split})
	}
	return r
}

func arrayHead(a gguf.Array, limit int) any {
	n := min(a.Len(), limit)
	switch v := a.Values.(type) {
	case []string:
		return v[:n]
	case []float32:
		return v[:n]
	case []int32:
		return v[:n]
	case []uint32:
		return v[:n]
	case []gguf.Array:
		return fmt.Sprintf("%d nested arrays", len(v))
	}
	s := gguf.Value{Type: gguf.ValueArray, Any: a}.String()
	return s
}

// Run opens the file and prints the report.
func (o *InspectOptions) Run(w io.Writer) error {
	f, err := gguf.Open(o.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := Report(o.Path, f, o.ArrayLimit)
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(w, r)
	}
	return printInspect(w, r, f)
}

func printInspect(w io.Writer, r InspectReport, f *gguf.File) error {
	fmt.Fprintf(w, "file:          %s\n", strings.Join(r.Parts, ", "))
	fmt.Fprintf(w, "gguf version:  %d\n", r.Version)
	fmt.Fprintf(w, "architecture:  %s\n", r.Architecture)
	fmt.Fprintf(w, "tensors:       %d (%s of data)\n", r.TensorCount, bytesize.Format(r.TensorBytes))
	fmt.Fprintf(w, "file size:     %s (data at byte %d, alignment %d)\n", bytesize.Format(r.FileSize), r.DataOffset, r.Alignment)
	keys := make([]string, 0, len(r.Hyperparameters))
	for k := range r.Hyperparameters {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		fmt.Fprintln(w, "\nhyperparameters:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %-34s %v\n", k, r.Hyperparameters[k])
		}
	}
	fmt.Fprintln(w, "\nmetadata:")
	for _, kv := range f.KV {
		fmt.Fprintf(w, "  %-44s %s\n", kv.Key, kv.Value)
	}
	fmt.Fprintln(w, "\ntensors:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tTYPE\tSHAPE\tBYTES")
	for _, t := range f.Tensors {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\n", t.Name, t.Type, t.Shape(), t.Size)
	}
	return tw.Flush()
}
