package cli

import (
	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/kernels"
)

// AddTilesFlag registers --no-tiles on cmd and its subcommands. By default
// products of 8 or more tokens with Q4_K and Q6_K weights run on AMX tiles
// where the CPU has them: exact integer dots, rounded once per block, so
// the logits differ from ggml's vec_dot in the last bits (as llama.cpp's
// own AMX path does). --no-tiles keeps the rows kernels everywhere: the
// arithmetic of llama.cpp with --no-repack, bit for bit.
func AddTilesFlag(cmd *cobra.Command) {
	var off bool
	cmd.PersistentFlags().BoolVar(&off, "no-tiles", false,
		"prompt processing on the rows kernels (llama.cpp --no-repack arithmetic, bit for bit) instead of AMX tiles")
	prev := cmd.PersistentPreRunE
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		kernels.SetTiles(!off)
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}
