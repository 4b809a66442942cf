package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit statuses of Run.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2   // a flag, argument or flag combination is wrong
	ExitInterrupted = 130 // SIGINT or SIGTERM (128 + 2)
)

// UsageError is a problem with how the command was invoked (unknown or
// malformed flag, bad flag value, wrong arguments, flags that do not go
// together): Run exits 2 on it instead of 1. Validate functions return it
// with Usage or Usagef; find it with errors.As.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usage marks err as a usage error (nil stays nil).
func Usage(err error) error {
	if err == nil {
		return nil
	}
	var u *UsageError
	if errors.As(err, &u) {
		return err
	}
	return &UsageError{Err: err}
}

// Usagef is Usage(fmt.Errorf(format, args...)).
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// FlagError marks an error of a flag set's Complete or Validate (the
// TLS, token and gossip-key flags of internal/rpc and membership) as a
// usage error — flags that do not go together, a malformed key — unless
// it is a file that could not be read (*fs.PathError: the flags were
// right, the file is not there), which stays a plain error.
func FlagError(err error) error {
	var pe *fs.PathError
	if err == nil || errors.As(err, &pe) {
		return err
	}
	return Usage(err)
}

// IsUsage reports whether err is (or wraps) a UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// markUsage makes cobra's own flag and argument errors usage errors on
// every command of the tree: flag parsing (unknown flag, bad value), the
// Args validators (wrong argument count), required flags and flag groups.
func markUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return Usage(err) })
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(c *cobra.Command, a []string) error { return Usage(args(c, a)) }
		}
		if c.Runnable() {
			// Required flags and flag groups are checked after PreRun:
			// check them first, as usage errors.
			pre, preE := c.PreRun, c.PreRunE
			c.PreRun, c.PreRunE = nil, func(c *cobra.Command, a []string) error {
				if err := c.ValidateRequiredFlags(); err != nil {
					return Usage(err)
				}
				if err := c.ValidateFlagGroups(); err != nil {
					return Usage(err)
				}
				if preE != nil {
					return preE(c, a)
				}
				if pre != nil {
					pre(c, a)
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// ErrorText is err's message without gRPC's status wrapping: "rpc error:
// code = NotFound desc = unknown node x" becomes "unknown node x (not
// found)", also when the status error is wrapped in other errors. Codes
// that add nothing (Unknown) are left out.
func ErrorText(err error) string {
	msg := err.Error()
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if !errors.As(err, &se) {
		return msg
	}
	st := se.GRPCStatus()
	if st == nil {
		return msg
	}
	clean := st.Message()
	if c := st.Code(); c != codes.OK && c != codes.Unknown {
		if words := codeWords(c.String()); !strings.Contains(clean, words) {
			clean += " (" + words + ")"
		}
	}
	return strings.Replace(msg, se.Error(), clean, 1)
}

// codeWords spells a gRPC code name in lower-case words: "NotFound" is
// "not found".
func codeWords(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte(' ')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
