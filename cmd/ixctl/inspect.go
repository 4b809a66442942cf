package main

import (
	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/commands"
)

func newInspectCmd(s cli.Streams) *cobra.Command { return commands.NewInspectCmd(s) }
