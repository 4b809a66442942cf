// Command ixctl is the Inference-X operator CLI: model tools (tokenize,
// synth, quantize, upcycle, split, fetch) and cluster operations (status, plan,
// apply, drain, move) against a coordinator's admin API.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
)

func main() { os.Exit(cli.Main("ixctl", newRoot)) }

func newRoot(s cli.Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "ixctl",
		Short: "Inference-X operator CLI: model tools and cluster placement",
		Long: `ixctl prepares models and steers an Inference-X cluster.

Model tools work on GGUF files directly; cluster commands talk to a
coordinator's admin API (--coordinator HOST:PORT or IX_COORDINATOR).`,
	}
	root.AddCommand(newInspectCmd(s), newTokenizeCmd(s), newSynthCmd(s), newQuantizeCmd(s), newUpcycleCmd(s),
		newStatusCmd(s), newPlanCmd(s), newApplyCmd(s), newDrainCmd(s), newUndrainCmd(s), newMoveCmd(s), newSplitCmd(s), newFetchCmd(s))
	root.AddCommand(cli.NewVersionCmd("ixctl", s))
	// For the commands that log (cli.CommandLogger), as on every binary.
	(&cli.LogFlags{}).AddFlags(root.PersistentFlags())
	cli.SetVersion(root, "ixctl")
	return root
}
