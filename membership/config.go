package membership

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPort is the gossip port when an address gives none.
const DefaultPort = 7946

// Config configures a member.
type Config struct {
	// Name is the member's unique id (an expert node's id).
	Name string
	// Bind is the gossip address host:port (TCP and UDP); port 0 picks a
	// free one.
	Bind string
	// Advertise is the address others reach this member at, when it is
	// not Bind's (NAT, a wildcard bind). Empty: derived from Bind.
	Advertise string
	// Seeds are members to join, host:port; a DNS name joins every
	// address it resolves to.
	Seeds []string
	// Key turns on gossip encryption (AES-GCM): 16, 24 or 32 bytes, the
	// same on every member.
	Key []byte
	// Meta is what this member gossips about itself.
	Meta Meta
	// Profile is "lan" (memberlist's LAN timings, the default) or "local"
	// (loopback: faster probes). Tune, when set, adjusts the memberlist
	// config last (tests make failure detection fast with it).
	Profile string
	Tune    func(*memberlist.Config)
	// RejoinInterval is how often a member that is alone (or whose first
	// join failed) tries the seeds again; 0 never retries.
	RejoinInterval time.Duration
	// ForgetAfter is how long a dead or departed member is still listed
	// (as dead or left) before it is forgotten.
	ForgetAfter time.Duration
	// Logger gets the member's and memberlist's logs.
	Logger *slog.Logger
	// LogInterval is how often one kind of memberlist warning or error
	// (such as "Failed to decode ping request", one per garbage packet) is
	// logged at most; the next line of its kind says how many were
	// suppressed. 0: DefaultLogInterval.
	LogInterval time.Duration
	// Registerer, when set, gets the ix_gossip_errors_total counter
	// (memberlist warnings and errors by level, suppressed ones too).
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults: LAN timings, rejoin every 10 s,
// departed members listed for 10 minutes.
func DefaultConfig() Config {
	return Config{Profile: "lan", RejoinInterval: 10 * time.Second, ForgetAfter: 10 * time.Minute}
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("membership: no member name")
	case c.Profile != "" && c.Profile != "lan" && c.Profile != "local":
		return fmt.Errorf("membership: profile %q (want lan or local)", c.Profile)
	case c.RejoinInterval < 0 || c.ForgetAfter < 0 || c.LogInterval < 0:
		return errors.New("membership: negative interval")
	}
	if _, _, err := splitAddr(c.Bind); err != nil {
		return fmt.Errorf("membership: bind address: %w", err)
	}
	if c.Advertise != "" {
		if _, _, err := splitAddr(c.Advertise); err != nil {
			return fmt.Errorf("membership: advertise address: %w", err)
		}
	}
	switch len(c.Key) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("membership: gossip key of %d bytes (want 16, 24 or 32)", len(c.Key))
	}
	if _, err := c.Meta.Encode(); err != nil {
		return err
	}
	return nil
}

// splitAddr splits host:port; a bare host gets DefaultPort.
func splitAddr(a string) (string, int, error) {
	if a == "" {
		return "", 0, errors.New("empty address")
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		// A bare host or IP: the default port.
		if ip := net.ParseIP(a); ip != nil || !containsColon(a) {
			return a, DefaultPort, nil
		}
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", a)
	}
	return host, p, nil
}

func containsColon(s string) bool {
	for i := range len(s) {
		if s[i] == ':' {
			return true
		}
	}
	return false
}

// ParseKey decodes a gossip key given as base64 (standard or URL
// alphabet, as `openssl rand -base64 32` prints): 16, 24 or 32 bytes.
func ParseKey(s string) ([]byte, error) {
	var k []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("membership: gossip key is not base64: %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("membership: gossip key of %d bytes (want 16, 24 or 32: `openssl rand -base64 32`)", len(k))
}

// memberlistConfig builds the memberlist config.
func (c *Config) memberlistConfig() (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	if c.Profile == "local" {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = c.Name
	host, port, err := splitAddr(c.Bind)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if c.Advertise != "" {
		ah, ap, err := splitAddr(c.Advertise)
		if err != nil {
			return nil, err
		}
		mc.AdvertiseAddr, mc.AdvertisePort = ah, ap
	}
	if len(c.Key) > 0 {
		mc.SecretKey = c.Key
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	if c.Tune != nil {
		c.Tune(mc)
	}
	return mc, nil
}
