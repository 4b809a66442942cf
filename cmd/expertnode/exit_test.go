package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
)

// TestExitCodes: flag problems exit 2 with the problem named, a model that
// cannot be opened exits 1.
func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--bogus"}, cli.ExitUsage, "unknown flag: --bogus"},
		{[]string{"-m", "x.gguf", "--max-concurrent", "many"}, cli.ExitUsage, `invalid argument "many"`},
		{[]string{}, cli.ExitUsage, "no model"},
		{[]string{"-m", "x.gguf", "--max-concurrent", "4", "--max-pending-calls", "2"}, cli.ExitUsage, "--max-pending-calls 2 must be at least --max-concurrent 4"},
		{[]string{"-m", "x.gguf", "--max-expert-uses", "0"}, cli.ExitUsage, "--max-expert-uses 0 positive"},
		{[]string{"-m", "x.gguf", "--tls-client-name", "coordinator"}, cli.ExitUsage, "--tls-client-name needs --tls-ca"},
		{[]string{"-m", "x.gguf", "--experts", "all", "--placement", "p.json"}, cli.ExitUsage, "not both"},
		{[]string{"-m", "x.gguf", "--listen", "nope"}, cli.ExitUsage, "--listen"},
		{[]string{"-m", "x.gguf", "-ngl", "99"}, cli.ExitUsage, "GPU offload does not apply"},
		{[]string{"-m", "x.gguf", "extra"}, cli.ExitUsage, "unknown command"},
		{[]string{"-m", "/nonexistent/x.gguf", "--listen", "127.0.0.1:0"}, cli.ExitError, "no such file"},
		{[]string{"-m", "x.gguf", "--tls-cert", "a.crt"}, cli.ExitUsage, "--tls-cert and --tls-key go together"},
		{[]string{"-m", "x.gguf", "--gossip", "127.0.0.1:0", "--gossip-key", "abc", "--gossip-key-file", "k"}, cli.ExitUsage, "not both"},
		{[]string{"-m", "x.gguf", "--token-file", "/nonexistent/token"}, cli.ExitError, "no such file"},
	} {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), "expertnode", newRoot, c.args, cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
}
