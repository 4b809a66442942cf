package experttest

import (
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/model"
)

// OpenModel maps the GGUF file at path and loads its model, failing the
// test on error; the file is closed when the test ends. m.File is the
// mapped file.
func OpenModel(t testing.TB, path string) *model.Model {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	m, err := model.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
