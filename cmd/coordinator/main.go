// Command coordinator is the main Inference-X binary: it runs embeddings,
// attention, gating, shared experts and the LM head, and routes routed
// experts to the local pager or to expert nodes.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
)

func main() { os.Exit(cli.Main("coordinator", newRoot)) }

func newRoot(s cli.Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "coordinator",
		Short: "Inference-X coordinator: run, serve and inspect GGUF models",
		Long: `coordinator runs GGUF language models on CPUs.

It runs embeddings, attention, gating, shared experts and the LM head
itself, and sends routed experts to the local expert pager (single-node
mode) or to expert nodes over gRPC.`,
	}
	root.AddCommand(newInspectCmd(s), newRunCmd(s), newPerplexityCmd(s), newBenchCmd(s), newServeCmd(s), newAdaptiveBenchCmd(s))
	cli.AddTilesFlag(root)
	root.AddCommand(cli.NewVersionCmd("coordinator", s))
	cli.SetVersion(root, "coordinator")
	return root
}
