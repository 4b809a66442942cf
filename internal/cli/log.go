package cli

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Log formats of --log-format.
const (
	LogText = "text" // logfmt-like key=value lines (slog.TextHandler)
	LogJSON = "json" // one JSON object per line (slog.JSONHandler)
)

// LogFlags are a command's --log-level and --log-format. The zero value
// logs text at info.
type LogFlags struct {
	Level  string // debug, info, warn or error
	Format string // text or json
}

// AddFlags registers --log-level and --log-format on fs. Both are checked
// while the flags are parsed, so a bad value is a usage error.
func (l *LogFlags) AddFlags(fs *pflag.FlagSet) {
	l.AddLevelFlag(fs, "log-level", "log level: debug, info, warn or error")
	l.AddFormatFlag(fs)
}

// AddLevelFlag registers the level flag under name (a command whose log
// is one component's, such as coordinator run's --cluster-log-level).
func (l *LogFlags) AddLevelFlag(fs *pflag.FlagSet, name, usage string) {
	if l.Level == "" {
		l.Level = "info"
	}
	fs.Var((*levelValue)(&l.Level), name, usage)
}

// AddFormatFlag registers --log-format alone.
func (l *LogFlags) AddFormatFlag(fs *pflag.FlagSet) {
	if l.Format == "" {
		l.Format = LogText
	}
	fs.Var((*formatValue)(&l.Format), "log-format", "log format on stderr: text (key=value) or json (one object per line)")
}

// Logger returns the logger the flags ask for, writing to w.
func (l LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if l.Level != "" {
		if err := level.UnmarshalText([]byte(l.Level)); err != nil {
			return nil, fmt.Errorf("bad log level %q (want debug, info, warn or error)", l.Level)
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.Format {
	case "", LogText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case LogJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q (want text or json)", l.Format)
}

type levelValue string

func (v *levelValue) String() string { return string(*v) }
func (v *levelValue) Type() string   { return "level" }
func (v *levelValue) Set(s string) error {
	if _, err := (LogFlags{Level: s}).Logger(io.Discard); err != nil {
		return fmt.Errorf("want debug, info, warn or error")
	}
	*v = levelValue(s)
	return nil
}

type formatValue string

func (v *formatValue) String() string { return string(*v) }
func (v *formatValue) Type() string   { return "text|json" }
func (v *formatValue) Set(s string) error {
	if s != LogText && s != LogJSON {
		return fmt.Errorf("want text or json")
	}
	*v = formatValue(s)
	return nil
}

// CommandLogger returns the logger that cmd's --log-level and
// --log-format ask for, whether cmd defines them or inherits them from a
// parent's persistent flags (ixctl's root); text at info without them.
func CommandLogger(cmd *cobra.Command, w io.Writer) (*slog.Logger, error) {
	var l LogFlags
	if f := cmd.Flags().Lookup("log-level"); f != nil {
		l.Level = f.Value.String()
	}
	if f := cmd.Flags().Lookup("log-format"); f != nil {
		l.Format = f.Value.String()
	}
	return l.Logger(w)
}
