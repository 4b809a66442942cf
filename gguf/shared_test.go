package gguf

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

// rejected are the files under ../shared/models that llama.cpp refuses and
// so must we (models/README.md): a GGUF v1 file and a v2 file whose Q8_0
// rows are not whole blocks.
var rejected = map[string]bool{
	"tinyllamas-stories-260k-f32.gguf":  true,
	"tinyllamas-stories-260k-q8_0.gguf": true,
}

// TestSharedFiles opens every GGUF under ../shared/testdata and
// ../shared/models: all open, tensors fit their data sections, and the two
// legacy files are refused with a format error.
func TestSharedFiles(t *testing.T) {
	root := testenv.Shared(t, "testdata")
	var paths []string
	for _, dir := range []string{root, filepath.Join(filepath.Dir(root), "models")} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".gguf") {
				paths = append(paths, p)
			}
			return nil
		})
	}
	if len(paths) < 50 {
		t.Fatalf("found only %d GGUF files under ../shared", len(paths))
	}
	for _, p := range paths {
		f, err := Open(p)
		if rejected[filepath.Base(p)] {
			if err == nil || !errors.Is(err, ErrFormat) {
				t.Errorf("%s: want a format error, got %v", p, err)
			} else {
				t.Logf("%s: rejected as expected: %v", filepath.Base(p), err)
			}
			if f != nil {
				f.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		for _, tt := range f.Tensors {
			if e := f.DataOffset(tt.Split) + tt.Offset + tt.Size; e > f.FileSize(tt.Split) {
				t.Errorf("%s: tensor %s ends at %d beyond the file", p, tt.Name, e)
			}
		}
		if _, err := f.Architecture(); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		f.Close()
	}
}

// TestManifestTensorTypes checks tensor counts per type against the
// manifest that came with llama.cpp's quantized test models.
func TestManifestTensorTypes(t *testing.T) {
	dir := testenv.Shared(t, "testdata/models")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Models map[string]struct {
			Variants map[string]struct {
				File        string         `json:"file"`
				Bytes       int64          `json:"bytes"`
				TensorTypes map[string]int `json:"tensor_types"`
			} `json:"variants"`
		} `json:"models"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, model := range m.Models {
		for _, v := range model.Variants {
			if len(v.TensorTypes) == 0 {
				continue
			}
			f, err := Open(filepath.Join(dir, v.File))
			if err != nil {
				t.Errorf("%s: %v", v.File, err)
				continue
			}
			got := map[string]int{}
			for _, tt := range f.Tensors {
				got[tt.Type.String()]++
			}
			for typ, n := range v.TensorTypes {
				if got[strings.ToUpper(typ)] != n {
					t.Errorf("%s: %d %s tensors, manifest says %d (all: %v)", v.File, got[strings.ToUpper(typ)], typ, n, got)
				}
			}
			if f.FileSize(0) != v.Bytes {
				t.Errorf("%s: %d bytes, manifest says %d", v.File, f.FileSize(0), v.Bytes)
			}
			f.Close()
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("checked only %d variants", checked)
	}
}
