package kernels

import (
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// FuzzDequantize feeds arbitrary bytes (NaN and Inf scales included) to
// every dequantizer and dot product; none may panic.
func FuzzDequantize(f *testing.F) {
	f.Add(uint8(gguf.TypeQ4_K), []byte{0xff, 0x7c, 0x00, 0x7e})
	f.Add(uint8(gguf.TypeQ8_0), make([]byte, 34))
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		tt := gguf.Type(typ) % gguf.TypeCount
		fm, err := Lookup(tt)
		if err != nil {
			return
		}
		bs, bb := tt.BlockSize(), tt.BlockBytes()
		n := len(data) / bb * bs
		dst := make([]float32, n)
		if err := DequantizeRow(tt, dst, data); err == nil && len(data)%bb != 0 {
			t.Fatalf("%v: accepted %d bytes, not a whole number of %d-byte blocks", tt, len(data), bb)
		}
		if n == 0 {
			return
		}
		w := data[:n/bs*bb]
		if fm.Dequantize != nil {
			_ = DequantizeRow(tt, dst, w)
		}
		if fm.DotF32 != nil {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			fm.DotF32(w, x)
		}
		if fm.Dot != nil {
			if ab, err := fm.VecDot.RowBytes(n); err == nil {
				a := make([]byte, ab)
				copy(a, data)
				fm.Dot(n, w, a)
			}
		}
	})
}
