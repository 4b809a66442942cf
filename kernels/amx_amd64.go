//go:build amd64 && !purego

package kernels

import (
	"log/slog"
	"syscall"
	"unsafe"

	"github.com/klauspost/cpuid/v2"

	"github.com/inference-x/inference-x/gguf"
)

// amxQ4KGroups is the Q4_K tile kernel with the scales folded into the
// levels, over ngroups token groups gstride bytes apart, results in
// acc[256*(ngroups+g)+16*t+r] (../_asm/amx.go); tileDotQ4KRef is its
// arithmetic.
//
//go:noescape
func amxQ4KGroups(acc *float32, w *byte, rowBytes int, rows int, b *byte, gstride int, ngroups int, nb int, scratch *byte)

// amxQ6KGroups is the Q6_K groups kernel with the scales split into
// balanced base-7 digits, like amxQ4KGroups (tileDotQ6KRef is its
// arithmetic).
//
//go:noescape
func amxQ6KGroups(acc *float32, w *byte, rowBytes int, rows int, b *byte, gstride int, ngroups int, nb int, scratch *byte)

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
	tileKernels[gguf.TypeQ4_K] = asmGroups(amxQ4KGroups, 144)
	tileKernels[gguf.TypeQ6_K] = asmGroups(amxQ6KGroups, 210)
}

// asmGroups adapts an assembly groups kernel on blocks of blockBytes,
// checking the bounds the assembly relies on.
func asmGroups(k func(acc *float32, w *byte, rowBytes int, rows int, b *byte, gstride int, ngroups int, nb int, scratch *byte), blockBytes int) tileKernel {
	return func(acc []float32, w []byte, rowBytes, rows int, b []byte, gstride, ngroups, nb int, scratch []byte) {
		_ = scratch[amxScratch-1]
		_ = acc[2*ngroups*256-1]
		_ = b[(ngroups-1)*gstride+nb*amxPackBytes-1]
		_ = w[(rows-1)*rowBytes+nb*blockBytes-1]
		k(&acc[0], unsafe.SliceData(w), rowBytes, rows, unsafe.SliceData(b), gstride, ngroups, nb, unsafe.SliceData(scratch))
	}
}
