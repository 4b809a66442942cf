package rpc

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/inference-x/inference-x/internal/testpki"
)

// serve starts a server with sec on loopback and returns its address.
func serve(t *testing.T, sec Security) string {
	t.Helper()
	cfg := DefaultServerConfig()
	cfg.Security = sec
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.SetServing("", true)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.GRPC.Serve(lis)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return lis.Addr().String()
}

func check(addr string, sec Security) error {
	cfg := DefaultClientConfig()
	cfg.Security = sec
	cc, err := Dial(addr, cfg)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestMutualTLS(t *testing.T) {
	ca, certs := testpki.Write(t, t.TempDir(), "server", "client")
	addr := serve(t, Security{CertFile: certs["server"][0], KeyFile: certs["server"][1], CAFile: ca, Token: "tok"})
	good := Security{CertFile: certs["client"][0], KeyFile: certs["client"][1], CAFile: ca, Token: "tok"}
	if err := check(addr, good); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	if err := check(addr, Security{CAFile: ca}); err == nil {
		t.Error("a client without a certificate got through mutual TLS")
	}
	if err := check(addr, Security{}); err == nil {
		t.Error("a plaintext client got through a TLS server")
	}
}

// TestClientNames: with ClientNames, a client certificate the CA signed
// but not named is refused in the handshake; a named one gets through.
func TestClientNames(t *testing.T) {
	ca, certs := testpki.Write(t, t.TempDir(), "server", "coordinator", "intruder")
	addr := serve(t, Security{CertFile: certs["server"][0], KeyFile: certs["server"][1], CAFile: ca, ClientNames: []string{"coordinator"}})
	if err := check(addr, Security{CertFile: certs["coordinator"][0], KeyFile: certs["coordinator"][1], CAFile: ca}); err != nil {
		t.Fatalf("named client: %v", err)
	}
	if err := check(addr, Security{CertFile: certs["intruder"][0], KeyFile: certs["intruder"][1], CAFile: ca}); err == nil {
		t.Error("a client certificate not named got through")
	}
	if err := (&Security{ClientNames: []string{"x"}}).Validate(); err == nil {
		t.Error("ClientNames without a CA validated")
	}
}

func TestServerTLSOnly(t *testing.T) {
	ca, certs := testpki.Write(t, t.TempDir(), "server")
	addr := serve(t, Security{CertFile: certs["server"][0], KeyFile: certs["server"][1]})
	if err := check(addr, Security{CAFile: ca}); err != nil {
		t.Fatalf("TLS: %v", err)
	}
}

func TestPlaintextPolicy(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		addr     string
		sec      Security
		want     string
		insecure bool
	}{
		{addr: "127.0.0.1:7070", want: "127.0.0.1:7070"},
		{addr: "localhost:7070", want: "localhost:7070"},
		{addr: ":7070", want: "127.0.0.1:7070"},
		{addr: "0.0.0.0:7070", want: "127.0.0.1:7070"},
		{addr: "10.1.2.3:7070", insecure: true},
		{addr: "10.1.2.3:7070", sec: Security{Insecure: true}, want: "10.1.2.3:7070"},
		{addr: "[::]:7070", sec: Security{CertFile: "c", KeyFile: "k", CAFile: "ca"}, want: "[::]:7070"},
		{addr: "[::]:7070", sec: Security{CertFile: "c", KeyFile: "k", Token: "t"}, want: "[::]:7070"},
		{addr: "127.0.0.1:7070", sec: Security{CertFile: "c", KeyFile: "k"}, want: "127.0.0.1:7070"},
		{addr: "[::]:7070", sec: Security{CertFile: "c", KeyFile: "k"}, insecure: true},
		{addr: "10.1.2.3:7070", sec: Security{CertFile: "c", KeyFile: "k"}, insecure: true},
		{addr: "10.1.2.3:7070", sec: Security{CertFile: "c", KeyFile: "k", Insecure: true}, want: "10.1.2.3:7070"},
	} {
		got, err := ListenAddress(tc.addr, &tc.sec, log)
		if tc.insecure {
			if !errors.Is(err, ErrInsecure) {
				t.Errorf("%s: err = %v, want ErrInsecure", tc.addr, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
	if _, err := Dial("10.1.2.3:7070", DefaultClientConfig()); !errors.Is(err, ErrInsecure) {
		t.Errorf("plaintext dial off loopback: %v", err)
	}
}

func TestStatusOf(t *testing.T) {
	errDomain := errors.New("domain")
	table := []ErrorCode{{Err: errDomain, Code: codes.NotFound}}
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{errors.Join(errDomain, errors.New("x")), codes.NotFound},
		{context.Canceled, codes.Canceled},
		{status.Error(codes.Aborted, "a"), codes.Aborted},
		{errors.New("other"), codes.Internal},
	} {
		if got := StatusOf(tc.err, table).Code(); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.err, got, tc.want)
		}
	}
}
