package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/buildinfo"
)

// TestVersion: --version answers before the root's own checks (its
// required flag), and the version subcommand prints the same line or
// buildinfo.Info as JSON.
func TestVersion(t *testing.T) {
	newRoot := func(s Streams) *cobra.Command {
		root := &cobra.Command{Use: "tool", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return nil }}
		root.Flags().String("model", "", "")
		root.MarkFlagRequired("model")
		root.AddCommand(NewVersionCmd("tool", s))
		SetVersion(root, "tool")
		return root
	}
	run := func(args ...string) (int, string) {
		var out, errs bytes.Buffer
		code := Run(context.Background(), "tool", newRoot, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errs})
		return code, out.String() + errs.String()
	}
	want := "tool " + buildinfo.Get().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if code, out := run(args...); code != 0 || out != want {
			t.Errorf("%v: exit %d, %q; want %q", args, code, out, want)
		}
	}
	code, out := run("version", "-o", "json")
	var in buildinfo.Info
	if err := json.Unmarshal([]byte(out), &in); code != 0 || err != nil || in != buildinfo.Get() {
		t.Errorf("version -o json: exit %d, %q (%v)", code, out, err)
	}
	if code, out := run("-v"); code == 0 {
		t.Errorf("-v is taken: %q", out)
	}
}
