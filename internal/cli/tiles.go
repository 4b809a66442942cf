package cli

import (
	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/kernels"
)

// AddTilesFlag registers --no-tiles and --no-batch-invariance on cmd and
// its subcommands. By default every product runs its per-row kernel
// whatever the number of tokens in it (kernels.SetBatchInvariant): a
// request's tokens and logits do not depend on what else is in the batch
// or how its prompt is chunked. --no-batch-invariance follows llama.cpp's
// choice of kernel by token count (tinyBLAS, batched IQ dots, and AMX
// tiles for 8+ tokens of Q4_K/Q6_K where the CPU has them: exact integer
// dots rounded once per block, as llama.cpp's own AMX path). --no-tiles
// keeps the rows kernels everywhere with llama.cpp's choice otherwise: the
// arithmetic of llama.cpp with --no-repack, bit for bit.
func AddTilesFlag(cmd *cobra.Command) {
	var off, variant bool
	cmd.PersistentFlags().BoolVar(&off, "no-tiles", false,
		"llama.cpp --no-repack arithmetic, bit for bit (its batch-size-dependent kernels, no AMX tiles)")
	cmd.PersistentFlags().BoolVar(&variant, "no-batch-invariance", false,
		"choose kernels by batch size as llama.cpp does (AMX tiles for prompts where the CPU has them): faster prompts, but a request's logits depend on what else is in the batch")
	prev := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		kernels.SetTiles(!off)
		kernels.SetBatchInvariant(!off && !variant)
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}
