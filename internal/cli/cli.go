// Package cli holds what the project's commands share: I/O streams,
// the -o text|json flag, JSON printing, logging set-up and the
// main -> run -> exit code convention. It holds no command logic.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Streams are the writers and reader a command may use; commands never
// touch os.Stdout or os.Stderr directly, so tests can capture them.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// Output is the value of a command's -o flag.
type Output string

// Output formats.
const (
	OutputText Output = "text"
	OutputJSON Output = "json"
)

// AddOutputFlag registers -o/--output on cmd.
func AddOutputFlag(cmd *cobra.Command, o *Output) {
	*o = OutputText
	cmd.Flags().VarP((*outputValue)(o), "output", "o", "output format: text or json")
}

type outputValue Output

func (o *outputValue) String() string { return string(*o) }
func (o *outputValue) Type() string   { return "text|json" }
func (o *outputValue) Set(s string) error {
	switch Output(s) {
	case OutputText, OutputJSON:
		*o = outputValue(s)
		return nil
	}
	return fmt.Errorf("unknown output format %q (want text or json)", s)
}

// PrintJSON writes v as indented JSON followed by a newline.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Logger returns a text slog logger on w at the given level name
// (debug, info, warn, error). Commands take LogFlags instead, for
// --log-format.
func Logger(w io.Writer, level string) (*slog.Logger, error) {
	return LogFlags{Level: level}.Logger(w)
}

// Main runs root with args and the process streams, cancelling its context
// on SIGINT/SIGTERM, and returns the exit status: 0; 2 (ExitUsage) after a
// usage error; 130 when interrupted; 1 after any other error, printed as
// "NAME: error" on one line. A second signal kills the process.
func Main(name string, newRoot func(Streams) *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore default handling: a second signal terminates
	}()
	return Run(ctx, name, newRoot, os.Args[1:], Streams{os.Stdin, os.Stdout, os.Stderr})
}

// Run executes the command tree on args; it is Main without the process
// around it, for tests. llama.cpp's multi-letter single-dash flags are
// rewritten or refused first (see dashFlags); flag and argument errors
// are usage errors; gRPC status wrapping is stripped from the message.
func Run(ctx context.Context, name string, newRoot func(Streams) *cobra.Command, args []string, s Streams) int {
	root := newRoot(s)
	markUsage(root)
	rewritten, err := rewriteArgs(root, args)
	if err == nil {
		root.SetArgs(rewritten)
		root.SetIn(s.In)
		root.SetOut(s.Out)
		root.SetErr(s.Err)
		root.SilenceErrors = true
		root.SilenceUsage = true
		err = root.ExecuteContext(ctx)
	}
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		fmt.Fprintf(s.Err, "%s: interrupted\n", name)
		return ExitInterrupted
	case IsUsage(err):
		fmt.Fprintf(s.Err, "%s: %s\n", name, ErrorText(err))
		return ExitUsage
	}
	fmt.Fprintf(s.Err, "%s: %s\n", name, ErrorText(err))
	return ExitError
}
