package cli

import (
	"testing"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/kernels"
)

// TestTilesFlags checks the arithmetic each flag selects: batch-invariant
// by default, llama.cpp's batch-size choice with --no-batch-invariance
// (tiles allowed) and with --no-tiles (tiles off).
func TestTilesFlags(t *testing.T) {
	defer kernels.SetTiles(true)
	defer kernels.SetBatchInvariant(true)
	for _, tc := range []struct {
		args             []string
		tiles, invariant bool
	}{
		{nil, true, true},
		{[]string{"--no-batch-invariance"}, true, false},
		{[]string{"--no-tiles"}, false, false},
		{[]string{"--no-tiles", "--no-batch-invariance"}, false, false},
		{nil, true, true}, // a later run without flags restores the default
	} {
		root := &cobra.Command{Use: "x"}
		root.AddCommand(&cobra.Command{Use: "sub", RunE: func(*cobra.Command, []string) error { return nil }})
		AddTilesFlag(root)
		root.SetArgs(append([]string{"sub"}, tc.args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if kernels.TilesEnabled() != tc.tiles || kernels.BatchInvariant() != tc.invariant {
			t.Errorf("%v: tiles %v, batch invariant %v; want %v, %v", tc.args, kernels.TilesEnabled(), kernels.BatchInvariant(), tc.tiles, tc.invariant)
		}
	}
}
