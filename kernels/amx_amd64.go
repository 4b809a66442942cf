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
	tileKernels[gguf.TypeQ4_K] = asmTiles(amxQ4K, 144)
	tileKernels[gguf.TypeQ6_K] = asmTiles(amxQ6K, 210)
}

// asmTiles adapts an assembly tile kernel on blocks of blockBytes, checking
// the bounds the assembly relies on.
func asmTiles(k func(acc *float32, w *byte, rowBytes int, rows int, b *byte, nb int, scratch *byte), blockBytes int) tileKernel {
	return func(acc *[256]float32, w []byte, rowBytes, rows int, b []byte, nb int, scratch []byte) {
		_ = scratch[amxScratch-1]
		_ = b[nb*amxPackBytes-1]
		_ = w[(rows-1)*rowBytes+nb*blockBytes-1]
		k(&acc[0], unsafe.SliceData(w), rowBytes, rows, unsafe.SliceData(b), nb, unsafe.SliceData(scratch))
	}
}
