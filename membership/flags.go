package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// KeyEnv is the environment variable the gossip key may come from (so it
// stays out of the process list).
const KeyEnv = "IX_GOSSIP_KEY"

// Flags are the gossip command-line flags, the same on the coordinator
// and expert nodes: --gossip, --join, --gossip-advertise, --gossip-key,
// --gossip-key-file.
type Flags struct {
	Gossip    string
	Join      []string
	Advertise string
	Key       string
	KeyFile   string
	// Insecure, set by the caller from its --insecure flag before
	// Validate, lets gossip run unencrypted off loopback.
	Insecure bool

	key []byte
}

// AddFlags registers the flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Gossip, "gossip", "", "bind gossip (memberlist, TCP and UDP) on HOST:PORT; without a gossip key only loopback (\":PORT\" binds 127.0.0.1) unless --insecure; empty: no gossip")
	fs.StringSliceVar(&f.Join, "join", nil, "gossip seeds to join, SEED,... (host:port; a DNS name joins every address it resolves to)")
	fs.StringVar(&f.Advertise, "gossip-advertise", "", "gossip address others reach this process at (default: from --gossip; $POD_IP in Kubernetes)")
	fs.StringVar(&f.Key, "gossip-key", "", "gossip encryption key, base64 of 16, 24 or 32 bytes (default: $"+KeyEnv+")")
	fs.StringVar(&f.KeyFile, "gossip-key-file", "", "file holding the gossip key (base64)")
}

// Enabled reports whether gossip was asked for.
func (f *Flags) Enabled() bool { return f.Gossip != "" }

// Complete reads the key from the flag, the file or the environment.
func (f *Flags) Complete() error {
	src := f.Key
	switch {
	case f.Key != "" && f.KeyFile != "":
		return errors.New("give --gossip-key or --gossip-key-file, not both")
	case f.KeyFile != "":
		b, err := os.ReadFile(f.KeyFile)
		if err != nil {
			return fmt.Errorf("--gossip-key-file: %w", err)
		}
		src = strings.TrimSpace(string(b))
	case src == "":
		src = os.Getenv(KeyEnv)
	}
	f.key = nil
	if src != "" {
		k, err := ParseKey(src)
		if err != nil {
			return err
		}
		f.key = k
	}
	return nil
}

// Validate checks the flags.
func (f *Flags) Validate() error {
	if !f.Enabled() {
		if len(f.Join) > 0 {
			return errors.New("--join needs --gossip HOST:PORT")
		}
		return nil
	}
	for i, j := range f.Join {
		if strings.TrimSpace(j) == "" {
			return fmt.Errorf("--join %q: empty entry %d (give SEED,... without empty items)", strings.Join(f.Join, ","), i+1)
		}
	}
	host, _, err := splitAddr(f.Gossip)
	if err != nil {
		return fmt.Errorf("--gossip %q: %w", f.Gossip, err)
	}
	if f.key == nil && !f.Insecure && !wildcard(host) && !isLoopback(host) {
		return fmt.Errorf("--gossip %s without a gossip key would gossip unencrypted off loopback: give --gossip-key-file (or $%s), or --insecure", f.Gossip, KeyEnv)
	}
	if f.Advertise != "" {
		ah, _, err := splitAddr(f.Advertise)
		if err != nil {
			return fmt.Errorf("--gossip-advertise %q: %w", f.Advertise, err)
		}
		if f.key == nil && !f.Insecure && !isLoopback(ah) {
			return fmt.Errorf("--gossip-advertise %s without a gossip key would gossip unencrypted off loopback: give --gossip-key-file (or $%s), or --insecure", f.Advertise, KeyEnv)
		}
	}
	return nil
}

// Config returns a member config from the flags (call Complete first).
// Without a key and --insecure a wildcard --gossip (":PORT",
// "0.0.0.0:PORT") binds 127.0.0.1, as the other listeners do in
// plaintext.
func (f *Flags) Config(name string, meta Meta) Config {
	c := DefaultConfig()
	c.Name, c.Bind, c.Advertise, c.Seeds, c.Key, c.Meta = name, f.BindAddr(), f.Advertise, f.Join, f.key, meta
	return c
}

// BindAddr is the address gossip binds: --gossip, or 127.0.0.1 with its
// port for a wildcard host without a key and --insecure.
func (f *Flags) BindAddr() string {
	host, port, err := splitAddr(f.Gossip)
	if err != nil || f.key != nil || f.Insecure || !wildcard(host) {
		return f.Gossip
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// LogSecurity logs how gossip is protected: a warning when it runs
// unencrypted off loopback (--insecure), a note when a wildcard --gossip
// was narrowed to loopback.
func (f *Flags) LogSecurity(log *slog.Logger) {
	if !f.Enabled() || f.key != nil {
		return
	}
	host, _, _ := splitAddr(f.Gossip)
	switch bind := f.BindAddr(); {
	case bind != f.Gossip:
		log.Info("no gossip key: gossip on loopback only; give --gossip-key-file (or --insecure) to gossip on other interfaces", "gossip", bind)
	case !isLoopback(host):
		log.Warn("--insecure: gossip unencrypted and unauthenticated off loopback; anyone who can reach it can join the cluster", "gossip", f.Gossip)
	}
}

func wildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::" || host == "[::]"
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
