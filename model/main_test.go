package model

import (
	"os"
	"testing"

	"github.com/inference-x/inference-x/kernels"
)

// TestMain runs the package's tests on ggml's vec_dot arithmetic: the
// llama.cpp references were made without weight repacking, and most tests
// here compare with them bit for bit or at kernel-parity tolerance. The
// AMX tile path (on by default where the CPU has it) is compared with the
// references by TestParityTiles.
func TestMain(m *testing.M) {
	kernels.SetTiles(false)
	kernels.SetBatchInvariant(false)
	os.Exit(m.Run())
}
