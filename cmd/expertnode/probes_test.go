package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/testenv"
)

func TestSideAddr(t *testing.T) {
	for in, want := range map[string]string{"": "", "off": "", "OFF": "", "7079": "127.0.0.1:7079", ":7079": "127.0.0.1:7079",
		"0.0.0.0:7079": "0.0.0.0:7079", "10.1.2.3:7079": "10.1.2.3:7079", "[::1]:9090": "[::1]:9090"} {
		if got := sideAddr(in); got != want {
			t.Errorf("sideAddr(%q) = %q, want %q", in, got, want)
		}
	}
	p := ProbeFlags{HealthListen: "127.0.0.1", MetricsListen: "off"}
	p.Complete()
	if err := p.Validate(); err != nil { // a bare word is taken for a port
		if !strings.Contains(err.Error(), "--health-listen") {
			t.Errorf("error %q does not name the flag", err)
		}
	} else {
		t.Error("--health-listen 127.0.0.1 (no port) was accepted")
	}
}

var (
	healthAddr  = regexp.MustCompile(`msg="health serving[^"]*" addr=(\S+)`)
	metricsAddr = regexp.MustCompile(`msg="metrics serving[^"]*" addr=(\S+)`)
)

// runNode runs expertnode in-process with args until the test ends and
// returns its logs once it serves.
func runNode(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	logs := newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- cli.Run(ctx, "expertnode", newRoot, args, cli.Streams{In: strings.NewReader(""), Out: io.Discard, Err: logs})
	}()
	t.Cleanup(func() {
		cancel() // as SIGTERM
		if c := <-code; c != 0 {
			t.Errorf("expertnode exited %d:\n%s", c, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !servingAddr.MatchString(logs.String()) {
		select {
		case c := <-code:
			code <- c
			t.Fatalf("expertnode exited %d before serving:\n%s", c, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("expertnode did not start serving:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return logs
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthAndMetricsPorts runs a node as an operator would in a pod:
// the kubelet's plaintext gRPC probe and HTTP probes on the health port,
// /metrics with the pager's metrics under --expert-mem.
func TestHealthAndMetricsPorts(t *testing.T) {
	model := testenv.Shared(t, "testdata/models/deepseek2-v3.Q8_0.gguf")
	for _, tc := range []struct {
		name    string
		metrics string
	}{{"one port", "127.0.0.1:0"}, {"two ports", "127.0.0.2:0"}} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-m", model, "--listen", "127.0.0.1:0", "--threads", "1", "--expert-mem", "64MiB",
				"--health-listen", "127.0.0.1:0"}
			if tc.metrics == "127.0.0.1:0" {
				args = append(args, "--metrics-listen", "127.0.0.1:0") // the same address: one server
			} else {
				args = append(args, "--metrics-listen", "127.0.0.2:0")
			}
			logs := runNode(t, args...).String()
			h, m := healthAddr.FindStringSubmatch(logs), metricsAddr.FindStringSubmatch(logs)
			if h == nil || m == nil {
				t.Fatalf("no health or metrics address logged:\n%s", logs)
			}
			if same := h[1] == m[1]; same != (tc.metrics == "127.0.0.1:0") {
				t.Fatalf("health on %s, metrics on %s", h[1], m[1])
			}

			cc, err := grpc.NewClient(h[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("plaintext gRPC health: %v %v, want SERVING", r.GetStatus(), err)
			}
			if code, body := httpGet(t, "http://"+h[1]+"/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready"`) {
				t.Errorf("/readyz: %d %s", code, body)
			}
			if code, _ := httpGet(t, "http://"+h[1]+"/livez"); code != http.StatusOK {
				t.Errorf("/livez: %d", code)
			}
			code, body := httpGet(t, "http://"+m[1]+"/metrics")
			if code != http.StatusOK {
				t.Fatalf("/metrics: %d", code)
			}
			for _, want := range []string{"ix_build_info{", "ix_pager_budget_bytes 6.7108864e+07", "ix_pager_hits_total ",
				"ix_pager_misses_total ", "ix_pager_resident_bytes ", "ix_pager_evictions_total ", "ix_node_held_experts ",
				"ix_node_ready 1", "go_goroutines ", "process_cpu_seconds_total "} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
		})
	}
}
