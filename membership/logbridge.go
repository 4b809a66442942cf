package membership

import (
	"bytes"
	"context"
	"log/slog"
)

// logBridge is memberlist's log output: it reads the level memberlist
// writes at the start of each line ("[DEBUG] memberlist: ...") and logs
// the rest at that slog level. slog.NewLogLogger would log every line at
// one level, so a flood of [DEBUG] probes would read as warnings or the
// [ERR] lines would be hidden.
type logBridge struct{ log *slog.Logger }

var levels = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG] "), slog.LevelDebug},
	{[]byte("[INFO] "), slog.LevelInfo},
	{[]byte("[WARN] "), slog.LevelWarn},
	{[]byte("[ERR] "), slog.LevelError},
	{[]byte("[ERROR] "), slog.LevelError},
}

func (b *logBridge) Write(p []byte) (int, error) {
	n := len(p)
	line := bytes.TrimRight(p, "\n")
	lvl := slog.LevelInfo
	for _, l := range levels {
		if bytes.HasPrefix(line, l.prefix) {
			lvl, line = l.level, line[len(l.prefix):]
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	if b.log.Enabled(context.Background(), lvl) {
		b.log.Log(context.Background(), lvl, string(line))
	}
	return n, nil
}
