package quantize

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/kernels"
)

// TestConvertTruncatedSource: converting a tensor of a mapped file that
// is truncated underneath fails with gguf.ErrFileChanged on the worker
// goroutines instead of killing the process with SIGBUS.
func TestConvertTruncatedSource(t *testing.T) {
	b, err := os.ReadFile(testenv.Shared(t, "models/stories260K/stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tt, ok := f.Tensor("token_embd.weight")
	if !ok {
		t.Fatal("no token_embd.weight")
	}
	cols, rows := int(tt.Dims[0]), int(tt.Rows())
	rb := tt.RowBytes()
	src := func(dst []float32, r0, r1 int) error {
		for r := r0; r < r1; r++ {
			if err := kernels.DequantizeRow(tt.Type, dst[(r-r0)*cols:(r-r0+1)*cols], tt.Data[r*rb:(r+1)*rb]); err != nil {
				return err
			}
		}
		return nil
	}
	rb8, _ := gguf.TypeQ8_0.RowBytes(cols)
	dst := make([]byte, rows*rb8)
	conv := Converter{Threads: 2}
	if err := conv.Convert(context.Background(), gguf.TypeQ8_0, cols, rows, src, nil, dst); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	err = conv.Convert(context.Background(), gguf.TypeQ8_0, cols, rows, src, nil, dst)
	if !errors.Is(err, gguf.ErrFileChanged) {
		t.Fatalf("Convert from a truncated mapping: %v, want ErrFileChanged", err)
	}
}
