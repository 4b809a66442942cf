//go:build amd64 && !purego

package kernels

import (
	"log/slog"
	"syscall"
	"unsafe"

	"github.com/klauspost/cpuid/v2"

	"github.com/inference-x/inference-x/gguf"
)

// amxQ4K is the Q4_K tile kernel (../_asm/amx.go): acc[16*r+t] over nb
// blocks for 16 weight rows (rows of them read from w) and one group of 16
// packed tokens b; tileQ4KRef in the tests is its arithmetic in Go.
//
//go:noescape
func amxQ4K(acc *float32, w *byte, rowBytes int, rows int, b *byte, nb int, scratch *byte)

// amxQ4KGroups is the Q4_K tile kernel with the scales folded into the
// levels, over ngroups token groups gstride bytes apart, results in
// acc[256*(ngroups+g)+16*t+r] (../_asm/amx.go); tileDotQ4KRef is its
// arithmetic.
//
//go:noescape
func amxQ4KGroups(acc *float32, w *byte, rowBytes int, rows int, b *byte, gstride int, ngroups int, nb int, scratch *byte)

// amxQ6K is the Q6_K tile kernel, like amxQ4K (tileDotQ6KRef in the tests).
//
//go:noescape
func amxQ6K(acc *float32, w *byte, rowBytes int, rows int, b *byte, nb int, scratch *byte)

// Linux arch_prctl codes that let a process use the AMX tile data.
const (
	archReqXcompPerm = 0x1023
	xfeatureTileData = 18
)

// enableAMX asks the kernel for the tile state; without it the first tile
// instruction faults.
func enableAMX() bool {
	if !cpuid.CPU.Supports(cpuid.AMXTILE, cpuid.AMXINT8) {
		return false
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureTileData, 0); errno != 0 {
		slog.Debug("kernels: AMX present but the kernel refused its tile state", "err", errno)
		return false
	}
	return true
}

func init() {
	if !(cpu.avx512 && cpu.vnni && cpu.gfni && cpu.f16c && cpu.fma) || !enableAMX() {
		return
	}
	tilesVariant.available = true
	tileKernels[gguf.TypeQ4_K] = func(acc []float32, w []byte, rowBytes, rows int, b []byte, gstride, ngroups, nb int, scratch []byte) {
		_ = scratch[amxScratch-1]
		_ = acc[2*ngroups*256-1]
		_ = b[(ngroups-1)*gstride+nb*amxPackBytes-1]
		_ = w[(rows-1)*rowBytes+nb*144-1]
		amxQ4KGroups(&acc[0], unsafe.SliceData(w), rowBytes, rows, unsafe.SliceData(b), gstride, ngroups, nb, unsafe.SliceData(scratch))
	}
	tileKernels[gguf.TypeQ6_K] = asmTiles(amxQ6K, 210)
}

// asmTiles adapts an assembly tile kernel of one token group on blocks of
// blockBytes, checking the bounds the assembly relies on.
func asmTiles(k func(acc *float32, w *byte, rowBytes int, rows int, b *byte, nb int, scratch *byte), blockBytes int) tileKernel {
	return func(acc []float32, w []byte, rowBytes, rows int, b []byte, gstride, ngroups, nb int, scratch []byte) {
		_ = scratch[amxScratch-1]
		_ = acc[2*ngroups*256-1]
		_ = b[(ngroups-1)*gstride+nb*amxPackBytes-1]
		_ = w[(rows-1)*rowBytes+nb*blockBytes-1]
		out := acc[256*ngroups:]
		for g := 0; g < ngroups; g++ {
			k(&acc[256*g], unsafe.SliceData(w), rowBytes, rows, &b[g*gstride], nb, unsafe.SliceData(scratch))
			for r := 0; r < 16; r++ {
				for t := 0; t < 16; t++ {
					out[256*g+16*t+r] = acc[256*g+16*r+t]
				}
			}
		}
	}
}
