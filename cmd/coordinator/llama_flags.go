package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/inference-x/inference-x/internal/cli"
)

// llamaAliases adds llama.cpp's long spellings of the flags of run,
// perplexity, bench and serve that mean the same here (-c and -s are
// shorthands on the flags themselves; -np and -sys are rewritten to
// --parallel and --system-prompt by cli.Run).
func llamaAliases(f *pflag.FlagSet) {
	for name, aliases := range map[string][]string{
		"ctx":       {"ctx-size"},
		"batch":     {"batch-size"},
		"n-predict": {"predict"},
		"temp":      {"temperature"},
		"slots":     {"parallel"},
		"system":    {"system-prompt"},
	} {
		if f.Lookup(name) != nil {
			cli.Alias(f, name, aliases...)
		}
	}
}

// ServeCompat are serve's llama-server flags that are more than another
// name: --host and --port (parts of --http), --api-key-file and -s/--seed.
type ServeCompat struct {
	Host       string
	Port       int
	APIKeyFile string
	Seed       int64

	flags *pflag.FlagSet
}

// AddFlags registers the flags and the aliases on f (after serve's own).
func (c *ServeCompat) AddFlags(f *pflag.FlagSet) {
	c.flags = f
	f.StringVar(&c.Host, "host", "", "host part of --http (llama-server's spelling)")
	f.IntVar(&c.Port, "port", 0, "port part of --http (llama-server's spelling)")
	f.StringVar(&c.APIKeyFile, "api-key-file", "", "read the bearer token from FILE (surrounding whitespace trimmed)")
	f.Int64VarP(&c.Seed, "seed", "s", -1, "sampling seed of requests that give none (-1: a random seed per request)")
	llamaAliases(f)
}

func (c *ServeCompat) changed(name string) bool { return c.flags != nil && c.flags.Changed(name) }

// completeCompat folds --host, --port, --api-key-file and --seed into
// the options. It runs before the environment's defaults (IX_API_KEY).
func (o *ServeOptions) completeCompat() error {
	c := &o.Compat
	if c.APIKeyFile != "" {
		if o.APIKey != "" {
			return cli.Usagef("--api-key and --api-key-file both give the API key; give one")
		}
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return fmt.Errorf("--api-key-file: %w", err)
		}
		if o.APIKey = strings.TrimSpace(string(b)); o.APIKey == "" {
			return fmt.Errorf("--api-key-file %s is empty", c.APIKeyFile)
		}
	}
	if c.changed("host") || c.changed("port") {
		addr := listenAddr(o.HTTP)
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return cli.Usagef("--http %q: %v", o.HTTP, err)
		}
		if c.changed("host") {
			if c.Host == "" {
				return cli.Usagef("--host must not be empty")
			}
			if c.changed("http") && host != c.Host {
				return cli.Usagef("--host %s and --http %s name different hosts; give one", c.Host, o.HTTP)
			}
			host = c.Host
		}
		if c.changed("port") {
			if c.Port < 0 || c.Port > 65535 {
				return cli.Usagef("--port %d: want 0-65535", c.Port)
			}
			if c.changed("http") && port != strconv.Itoa(c.Port) {
				return cli.Usagef("--port %d and --http %s name different ports; give one", c.Port, o.HTTP)
			}
			port = strconv.Itoa(c.Port)
		}
		o.HTTP = net.JoinHostPort(host, port)
	}
	switch {
	case c.Seed >= 0:
		o.Sampler.Seed = uint64(c.Seed)
	case c.Seed != -1:
		return cli.Usagef("--seed %d: want a seed >= 0, or -1 for a random one per request", c.Seed)
	}
	return nil
}
