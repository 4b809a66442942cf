package kernels

import (
	"errors"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// TestQuantizeActivationVectors checks the activation quantizers against
// every ggml test-vector file that has a dot product, whether or not the
// weight format itself is implemented: QuantizeActivation must give ggml-cpu's
// SIMD bytes, the reference quantizer the libggml-base bytes, and the
// reference is also what the portable (x64) build ran.
func TestQuantizeActivationVectors(t *testing.T) {
	seen := map[gguf.Type]int{}
	for _, vf := range loadVectors(t) {
		if vf.VecDotType < 0 {
			continue
		}
		at := gguf.Type(vf.VecDotType)
		f, err := Lookup(at)
		if err != nil {
			t.Errorf("%s: companion %v: %v", vf.Name, at, err)
			continue
		}
		for _, c := range vf.Cases {
			if c.Act == nil {
				continue
			}
			seen[at]++
			if n := ActivationBytes(at, c.PerRow); n != c.ActRowSize {
				t.Fatalf("%s/%s: ActivationBytes(%v, %d) = %d, ggml %d", vf.Name, c.Name, at, c.PerRow, n, c.ActRowSize)
			}
			got := make([]byte, c.ActRowSize)
			if err := QuantizeActivation(at, got, c.Act); err != nil {
				t.Fatal(err)
			}
			if i := firstByteDiff(got, c.ActSIMD); i >= 0 {
				t.Errorf("%s/%s: %v activation byte %d = %#02x, ggml-cpu %#02x", vf.Name, c.Name, at, i, got[i], c.ActSIMD[i])
			}
			f.Quantize(got, c.Act, nil)
			if i := firstByteDiff(got, c.ActRef); i >= 0 {
				t.Errorf("%s/%s: %v reference byte %d = %#02x, ggml %#02x", vf.Name, c.Name, at, i, got[i], c.ActRef[i])
			}
			if i := firstByteDiff(got, c.ActX64); i >= 0 {
				t.Errorf("%s/%s: %v reference byte %d = %#02x, ggml x64 %#02x", vf.Name, c.Name, at, i, got[i], c.ActX64[i])
			}
		}
	}
	for _, at := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ8_1, gguf.TypeQ8_K} {
		if seen[at] == 0 {
			t.Errorf("no test vectors with %v activations", at)
		}
	}
	t.Logf("activation rows checked per companion type: %v", seen)
}

func TestQuantizeActivationChecks(t *testing.T) {
	x := make([]float32, 256)
	for _, tc := range []struct {
		t     gguf.Type
		bytes int
	}{
		{gguf.TypeF32, 1024}, {gguf.TypeF16, 512}, {gguf.TypeBF16, 512},
		{gguf.TypeQ8_0, 272}, {gguf.TypeQ8_1, 288}, {gguf.TypeQ8_K, 292},
	} {
		if n := ActivationBytes(tc.t, len(x)); n != tc.bytes {
			t.Errorf("ActivationBytes(%v, 256) = %d, want %d", tc.t, n, tc.bytes)
		}
		if err := QuantizeActivation(tc.t, make([]byte, tc.bytes), x); err != nil {
			t.Errorf("%v: %v", tc.t, err)
		}
		if err := QuantizeActivation(tc.t, make([]byte, tc.bytes-1), x); err == nil {
			t.Errorf("%v: short destination accepted", tc.t)
		}
	}
	if n := ActivationBytes(gguf.TypeQ8_K, 32); n != 0 {
		t.Errorf("ActivationBytes(Q8_K, 32) = %d, want 0 (not whole blocks)", n)
	}
	if n := ActivationBytes(gguf.TypeQ4_0, 32); n != 0 {
		t.Errorf("ActivationBytes(Q4_0, 32) = %d, want 0 (not an activation type)", n)
	}
	if err := QuantizeActivation(gguf.TypeQ8_0, make([]byte, 34), x[:31]); err == nil {
		t.Error("Q8_0: 31 elements accepted")
	}
	if err := QuantizeActivation(gguf.TypeQ4_0, make([]byte, 18), x[:32]); !errors.Is(err, ErrNoKernel) {
		t.Errorf("Q4_0 as activation: err = %v, want ErrNoKernel", err)
	}
}

// TestQuantizeActivationAllocs: the forward pass calls it per token.
func TestQuantizeActivationAllocs(t *testing.T) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%97) - 48.5
	}
	for _, at := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ8_1, gguf.TypeQ8_K} {
		dst := make([]byte, ActivationBytes(at, len(x)))
		if a := testing.AllocsPerRun(10, func() { _ = QuantizeActivation(at, dst, x) }); a != 0 {
			t.Errorf("%v: %v allocations per call", at, a)
		}
	}
}

// BenchmarkQuantizeActivation reports input MB/s (f32 bytes) of quantizing
// a 4096-element activation row to each companion type.
func BenchmarkQuantizeActivation(b *testing.B) {
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(i%97) - 48.5
	}
	for _, at := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ8_1, gguf.TypeQ8_K} {
		b.Run(at.String(), func(b *testing.B) {
			dst := make([]byte, ActivationBytes(at, len(x)))
			b.SetBytes(int64(4 * len(x)))
			for b.Loop() {
				_ = QuantizeActivation(at, dst, x)
			}
		})
	}
}
