package cli

import (
	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/kernels"
)

// AddTilesFlag registers --no-tiles and --no-batch-invariance on cmd and
// its subcommands. By default (kernels.SetBatchInvariant) a request's
// tokens and logits do not depend on what else is in the batch or how its
// prompt is chunked: every product runs one arithmetic per row whatever
// its token count (vec_dot's; on CPUs with AMX, the tiles' for Q4_K/Q6_K,
// whose smaller products then run rows kernels of the same arithmetic).
// --no-batch-invariance follows llama.cpp's choice of kernel by token
// count (tinyBLAS, batched IQ dots, AMX tiles for 8+ tokens). --no-tiles
// keeps the rows kernels everywhere with llama.cpp's choice otherwise: the
// arithmetic of llama.cpp with --no-repack, bit for bit.
func AddTilesFlag(cmd *cobra.Command) {
	var off, variant bool
	cmd.PersistentFlags().BoolVar(&off, "no-tiles", false,
		"llama.cpp --no-repack arithmetic, bit for bit (its batch-size-dependent kernels, no AMX tiles)")
	cmd.PersistentFlags().BoolVar(&variant, "no-batch-invariance", false,
		"choose kernels by batch size as llama.cpp does: a request's logits then depend on what else is in the batch and on --batch")
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
