// Command expertnode is an Inference-X expert node: it opens a GGUF model,
// holds a set of its routed experts and serves them to coordinators over
// gRPC (ExpertService.Forward), with the standard health service and a
// graceful shutdown that drains in-flight calls.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
)

func main() { os.Exit(cli.Main("expertnode", newRoot)) }

func newRoot(s cli.Streams) *cobra.Command {
	cmd := newServeCmd(s)
	cli.AddTilesFlag(cmd)
	cli.SetVersion(cmd, "expertnode")
	return cmd
}
