package rpc

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/internal/cli"
)

// TokenEnv is the environment variable a shared token may come from (so it
// stays out of the process list).
const TokenEnv = "IX_CLUSTER_TOKEN"

// SecurityFlags are the command-line flags of Security, shared by the
// coordinator and expert nodes.
type SecurityFlags struct {
	Security  Security
	TokenFile string
}

// AddFlags registers --tls-cert, --tls-key, --tls-ca, --tls-server-name
// (clients), --tls-client-name (servers), --token-file and --insecure.
func (f *SecurityFlags) AddFlags(fs *pflag.FlagSet, server bool) {
	s := &f.Security
	if server {
		fs.StringVar(&s.CertFile, "tls-cert", "", "TLS certificate (PEM); turns TLS on")
		fs.StringVar(&s.KeyFile, "tls-key", "", "TLS private key (PEM) of --tls-cert")
		fs.StringVar(&s.CAFile, "tls-ca", "", "CA bundle (PEM) that must sign client certificates: mutual TLS")
		fs.StringSliceVar(&s.ClientNames, "tls-client-name", nil, "with --tls-ca, accept only client certificates with this DNS name, URI or common name (repeatable)")
		fs.BoolVar(&s.Insecure, "insecure", false, "serve off loopback in plaintext, or with TLS but no --tls-ca or token, and gossip off loopback without a key (logged as warnings)")
	} else {
		fs.StringVar(&s.CertFile, "tls-cert", "", "client certificate (PEM) for mutual TLS with expert nodes")
		fs.StringVar(&s.KeyFile, "tls-key", "", "private key (PEM) of --tls-cert")
		fs.StringVar(&s.CAFile, "tls-ca", "", "CA bundle (PEM) that signs the expert nodes' certificates; turns TLS on")
		fs.StringVar(&s.ServerName, "tls-server-name", "", "name to verify in the nodes' certificates (default: the host dialled)")
		fs.BoolVar(&s.Insecure, "insecure", false, "allow plaintext connections to non-loopback expert nodes; serve: also the admin API off loopback without TLS or client authentication, and gossip without a key (logged as warnings)")
	}
	fs.StringVar(&f.TokenFile, "token-file", "", "file holding the cluster's shared token (default: $"+TokenEnv+")")
}

// Complete reads the token from --token-file or the environment.
func (f *SecurityFlags) Complete() error {
	f.Security.Token = os.Getenv(TokenEnv)
	if f.TokenFile != "" {
		b, err := os.ReadFile(f.TokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		f.Security.Token = strings.TrimSpace(string(b))
		if f.Security.Token == "" {
			return fmt.Errorf("--token-file %s is empty", f.TokenFile)
		}
	}
	// A bad combination of the flags is a usage error (exit 2).
	return cli.Usage(f.Security.Validate())
}
