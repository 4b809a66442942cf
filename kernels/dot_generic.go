//go:build !amd64 || purego

package kernels

// This build has only the pure-Go kernels: no variant is registered, so
// every dot product runs Format.Dot.

// cpuRelax is one poll of a spin-wait loop (PAUSE on amd64).
func cpuRelax() {}

// readBytes returns the XOR of p's 64-bit words (len(p) a multiple of 256).
func readBytes(p []byte) uint64 { return readBytesGo(p) }
