package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/buildinfo"
)

// SetVersion makes root answer --version with one line,
// "NAME v0.16.0 (revision abc123, go1.26.8, linux/amd64)", before any
// other flag is checked (expertnode --version needs no -m).
func SetVersion(root *cobra.Command, name string) {
	root.Version = buildinfo.Get().String()
	root.SetVersionTemplate(name + " {{.Version}}\n")
	// Our own flag, so cobra does not take -v for it.
	root.Flags().Bool("version", false, "print the version and exit")
}

// NewVersionCmd returns `NAME version [-o json]`, kubectl's spelling of
// --version; -o json prints buildinfo.Info.
func NewVersionCmd(name string, s Streams) *cobra.Command {
	var out Output
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			in := buildinfo.Get()
			if out == OutputJSON {
				return PrintJSON(s.Out, in)
			}
			_, err := fmt.Fprintf(s.Out, "%s %s\n", name, in)
			return err
		},
	}
	AddOutputFlag(cmd, &out)
	return cmd
}
