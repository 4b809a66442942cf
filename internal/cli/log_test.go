package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestLogFlags(t *testing.T) {
	var l LogFlags
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	l.AddFlags(fs)
	if err := fs.Parse([]string{"--log-format", "json", "--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	log, err := l.Logger(&b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("dropped")
	log.Warn("kept", "n", 3)
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "kept" || rec["n"] != 3.0 || rec["level"] != "WARN" {
		t.Errorf("log %q: %v, %v", b.String(), rec, err)
	}

	var d LogFlags
	fs = pflag.NewFlagSet("x", pflag.ContinueOnError)
	d.AddFlags(fs)
	if d.Level != "info" || d.Format != LogText {
		t.Errorf("defaults %+v", d)
	}
	for _, args := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}} {
		fs.SetOutput(&bytes.Buffer{})
		if err := fs.Parse(args); err == nil || !strings.Contains(err.Error(), args[0]) || !strings.Contains(err.Error(), "want") {
			t.Errorf("%v: %v", args, err)
		}
	}
	if _, err := (LogFlags{Format: "xml"}).Logger(&b); err == nil {
		t.Error("format xml: no error")
	}
}

// TestCommandLogger: a subcommand logs as its parent's persistent
// --log-format says.
func TestCommandLogger(t *testing.T) {
	var b bytes.Buffer
	root := &cobra.Command{Use: "x"}
	(&LogFlags{}).AddFlags(root.PersistentFlags())
	root.AddCommand(&cobra.Command{Use: "sub", RunE: func(cmd *cobra.Command, _ []string) error {
		log, err := CommandLogger(cmd, &b)
		if err == nil {
			log.Info("hello")
		}
		return err
	}})
	root.SetArgs([]string{"sub", "--log-format", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "hello" {
		t.Errorf("log %q: %v", b.String(), err)
	}
	b.Reset()
	log, err := CommandLogger(&cobra.Command{}, &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("x")
	if !strings.HasPrefix(b.String(), "time=") {
		t.Errorf("without the flags: %q", b.String())
	}
}
