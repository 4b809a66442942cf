package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
)

// TestBadCountsAndInsecureFlags: negative counts and gossip off loopback
// without a key are usage errors (exit 2) naming the flag.
func TestBadCountsAndInsecureFlags(t *testing.T) {
	t.Setenv("IX_GOSSIP_KEY", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-m", "x.gguf", "-t", "-3"}, "--threads -3"},
		{[]string{"-m", "x.gguf", "--gossip", "10.1.2.3:7946"}, "--gossip-key-file"},
		{[]string{"-m", "x.gguf", "--gossip", "node-0.ix:7946", "--join", "a:1"}, "or --insecure"},
	} {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), "expertnode", newRoot, c.args, cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != cli.ExitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), cli.ExitUsage, c.want)
		}
	}
}
