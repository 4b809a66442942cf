package main

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/model"
)

func parseCluster(t *testing.T, args ...string) (*ClusterOptions, error) {
	t.Helper()
	o := &ClusterOptions{}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o, o.Validate()
}

func TestClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{args: nil},
		{args: []string{"--nodes", "127.0.0.1:1,127.0.0.1:2"}},
		{args: []string{"--nodes", "127.0.0.1:1", "--placement", "p.json"}, err: "not both"},
		{args: []string{"--local-experts=false"}, err: "needs expert nodes"},
		{args: []string{"--nodes", "127.0.0.1:1", "--node-timeout", "0s"}, err: "must be positive"},
		{args: []string{"--nodes", "127.0.0.1:1", "--eject-base", "0s"}, err: "--eject-base 0s must be positive"},
		{args: []string{"--nodes", "127.0.0.1:1", "--eject-base", "10s", "--eject-max", "5s"}, err: "--eject-max 5s not below it"},
		{args: []string{"--nodes", "127.0.0.1:1", "--eject-base", "100ms", "--eject-max", "2s"}},
		{args: []string{"--nodes", "127.0.0.1:1", "--tls-cert", "c.pem"}, err: "go together"},
		{args: []string{"--nodes", "127.0.0.1:1", "--token-file", "/nonexistent"}, err: "--token-file"},
	} {
		_, err := parseCluster(t, tc.args...)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.err)
		}
	}
}

func TestClusterBackendErrors(t *testing.T) {
	path := testenv.Shared(t, "testdata/models/deepseek2-384.Q8_0.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// single-node mode leaves the options alone
	o, _ := parseCluster(t)
	opt, done, err := o.RunnerOptions(context.Background(), f, model.Options{Threads: 1}, &strings.Builder{})
	if err != nil || opt.Experts != nil {
		t.Fatalf("single node: %v %v", opt.Experts, err)
	}
	done()
	// plaintext to a remote address is refused before any connection
	o, _ = parseCluster(t, "--nodes", "10.255.255.1:7070", "--local-experts=false")
	if _, _, err := o.RunnerOptions(context.Background(), f, model.Options{Threads: 1}, &strings.Builder{}); err == nil ||
		!strings.Contains(err.Error(), "without TLS") {
		t.Fatalf("plaintext off loopback: %v", err)
	}
}
