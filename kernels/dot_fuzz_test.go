package kernels

import (
	"math"
	"testing"

	"github.com/inference-x/inference-x/gguf"
)

// FuzzDotRows runs every assembly variant of every type on arbitrary weight
// and activation bytes (NaN/Inf scales, -128, saturated nibbles) and
// compares it with the pure-Go Format.Dot and its Go lane model bit for
// bit, and on tiles of several
// rows and tokens with the same variant one dot at a time.
func FuzzDotRows(f *testing.F) {
	f.Add(uint8(gguf.TypeQ4_K), uint8(3), []byte{0xff, 0x7c, 0x00, 0x7e}, []byte{0x80, 0x80})
	f.Add(uint8(gguf.TypeQ8_0), uint8(1), make([]byte, 68), []byte{0x00, 0x3c, 0x80})
	f.Add(uint8(gguf.TypeQ6_K), uint8(2), []byte{0x01}, []byte{0x7f, 0xff})
	f.Fuzz(func(t *testing.T, typ uint8, shape uint8, wseed, aseed []byte) {
		tt := gguf.Type(typ) % gguf.TypeCount
		vs := variants[tt]
		if len(vs) == 0 {
			return
		}
		fm, _ := Lookup(tt)
		nb := 1 + int(shape%3)
		rows := 1 + int(shape/3%3)
		nt := 1 + int(shape/9%TileTokens)
		cols := nb * tt.BlockSize()
		rb, _ := tt.RowBytes(cols)
		ab, _ := fm.VecDot.RowBytes(cols)
		w := fill(make([]byte, rows*rb), wseed)
		a := fill(make([]byte, nt*ab), aseed)
		model := laneModels[tt]
		for _, v := range vs {
			out := make([]float32, nt*rows)
			v.fn(out, rows, w, rows, a, ab, nt, cols)
			one := make([]float32, 1)
			for tk := 0; tk < nt; tk++ {
				for r := 0; r < rows; r++ {
					got := out[tk*rows+r]
					row, act := w[r*rb:(r+1)*rb], a[tk*ab:(tk+1)*ab]
					v.fn(one, 1, row, 1, act, ab, 1, cols)
					if !sameFloat(got, one[0]) {
						t.Fatalf("%v/%s: tile gives %g, single dot %g", tt, v.isa, got, one[0])
					}
					if want := pureDot(tt)(cols, row, act); !sameFloat(got, want) {
						t.Fatalf("%v/%s row %d token %d: %g (%#08x), pure-Go Dot %g (%#08x)", tt, v.isa, r, tk,
							got, math.Float32bits(got), want, math.Float32bits(want))
					}
					if model != nil {
						if want := model(cols, row, act); !sameFloat(got, want) {
							t.Fatalf("%v/%s row %d token %d: %g (%#08x), lane model %g (%#08x)", tt, v.isa, r, tk,
								got, math.Float32bits(got), want, math.Float32bits(want))
						}
					}
				}
			}
		}
	})
}

// fill repeats seed over b (zeros when seed is empty), stirring each copy
// so that long buffers do not repeat exactly.
func fill(b, seed []byte) []byte {
	if len(seed) == 0 {
		return b
	}
	for i := range b {
		b[i] = seed[i%len(seed)] + byte(i/len(seed))*151
	}
	return b
}
