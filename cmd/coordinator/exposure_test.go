package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestWarnExposed(t *testing.T) {
	for _, tc := range []struct {
		addr, key string
		warn      bool
	}{
		{"127.0.0.1:8080", "", false},
		{"localhost:8080", "", false},
		{"[::1]:8080", "", false},
		{"0.0.0.0:8080", "", true},
		{"[::]:8080", "", true},
		{"10.1.2.3:8080", "", true},
		{"0.0.0.0:8080", "k", false},
	} {
		var buf bytes.Buffer
		got := warnExposed(slog.New(slog.NewTextHandler(&buf, nil)), tc.addr, tc.key)
		if got != tc.warn || got != strings.Contains(buf.String(), "level=WARN") {
			t.Errorf("%s (key %q): warned %v, want %v: %s", tc.addr, tc.key, got, tc.warn, buf.String())
		}
		if got && !strings.Contains(buf.String(), "--api-key-file") {
			t.Errorf("%s: the warning does not say what to add: %s", tc.addr, buf.String())
		}
	}
}
