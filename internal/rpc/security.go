package rpc

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
)

// ErrInsecure is wrapped when a plaintext connection, or a TLS server
// that does not authenticate its clients, would leave the loopback
// interface without --insecure.
var ErrInsecure = errors.New("rpc: plaintext connection off loopback")

// Security is how one side of a connection authenticates: TLS files and a
// shared token. The zero value is plaintext without a token, which servers
// accept only on loopback addresses unless Insecure is set.
type Security struct {
	// CertFile and KeyFile are this side's certificate and key (PEM). A
	// server needs both for TLS; a client gives them for mutual TLS.
	CertFile, KeyFile string
	// CAFile is a PEM bundle. On a server it turns on mutual TLS: clients
	// must present a certificate it signs. On a client it verifies servers
	// (the system roots are used when it is empty and TLS is on).
	CAFile string
	// ServerName overrides the name a client checks in the server's
	// certificate (default: the host of the address dialled).
	ServerName string
	// ClientNames, on a server with CAFile, are the client certificates
	// accepted: a client's verified certificate must carry one of them as
	// a DNS name, URI (a SPIFFE ID) or common name. Empty: any certificate
	// the CA signed. Checked in the TLS handshake, before HTTP/2 starts.
	ClientNames []string
	// Token is a shared secret sent as "authorization: Bearer TOKEN" on
	// every call and required by servers when set.
	Token string
	// Insecure allows plaintext on non-loopback addresses.
	Insecure bool
}

// TLS reports whether s turns TLS on: a server with a certificate, or a
// client with any TLS file.
func (s *Security) TLS() bool { return s.CertFile != "" || s.KeyFile != "" || s.CAFile != "" }

// Validate checks that the files come in usable combinations.
func (s *Security) Validate() error {
	if (s.CertFile == "") != (s.KeyFile == "") {
		return errors.New("rpc: --tls-cert and --tls-key go together")
	}
	if strings.ContainsAny(s.Token, "\r\n") {
		return errors.New("rpc: the token must be one line")
	}
	if len(s.ClientNames) > 0 && s.CAFile == "" {
		return errors.New("rpc: --tls-client-name needs --tls-ca (mutual TLS)")
	}
	return nil
}

// serverCredentials returns the TLS credentials of a server, or nil for
// plaintext.
func (s *Security) serverCredentials() (credentials.TransportCredentials, error) {
	if s.CertFile == "" {
		if s.CAFile != "" {
			return nil, errors.New("rpc: --tls-ca on a server needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("rpc: server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pool, err := loadPool(s.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		if len(s.ClientNames) > 0 {
			cfg.VerifyConnection = s.checkClientName
		}
	}
	return credentials.NewTLS(cfg), nil
}

// checkClientName accepts a connection whose verified client
// certificate carries one of s.ClientNames.
func (s *Security) checkClientName(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("rpc: no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	for _, n := range names {
		if n != "" && slices.Contains(s.ClientNames, n) {
			return nil
		}
	}
	return fmt.Errorf("rpc: client certificate %q is not one of --tls-client-name %s", leaf.Subject.CommonName, strings.Join(s.ClientNames, ","))
}

// clientCredentials returns the TLS credentials of a client, or nil for
// plaintext.
func (s *Security) clientCredentials() (credentials.TransportCredentials, error) {
	if !s.TLS() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("rpc: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if s.CAFile != "" {
		pool, err := loadPool(s.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return credentials.NewTLS(cfg), nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rpc: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("rpc: CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// IsLoopback reports whether a listen or dial address stays on this
// machine: an IP in 127.0.0.0/8 or ::1, or "localhost". An empty host
// (":7070", all interfaces) is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// tokenCredentials sends the shared token on every call.
type tokenCredentials struct {
	header     string
	requireTLS bool
}

func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": t.header}, nil
}

func (t tokenCredentials) RequireTransportSecurity() bool { return t.requireTLS }

// tokenOK compares the authorization values of a call with the token in
// constant time.
func tokenOK(values []string, token string) bool {
	want := []byte("Bearer " + token)
	ok := false
	for _, v := range values {
		if subtle.ConstantTimeCompare([]byte(v), want) == 1 {
			ok = true
		}
	}
	return ok
}
