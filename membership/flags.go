package membership

import (
	"errors"
	"fmt"
	"os"
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

	key []byte
}

// AddFlags registers the flags on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Gossip, "gossip", "", "bind gossip (memberlist, TCP and UDP) on HOST:PORT; empty: no gossip")
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
	if _, _, err := splitAddr(f.Gossip); err != nil {
		return fmt.Errorf("--gossip %q: %w", f.Gossip, err)
	}
	if f.Advertise != "" {
		if _, _, err := splitAddr(f.Advertise); err != nil {
			return fmt.Errorf("--gossip-advertise %q: %w", f.Advertise, err)
		}
	}
	return nil
}

// Config returns a member config from the flags (call Complete first).
func (f *Flags) Config(name string, meta Meta) Config {
	c := DefaultConfig()
	c.Name, c.Bind, c.Advertise, c.Seeds, c.Key, c.Meta = name, f.Gossip, f.Advertise, f.Join, f.key, meta
	return c
}
