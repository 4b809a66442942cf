package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/internal/testpki"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

var (
	httpAddr   = regexp.MustCompile(`msg=serving addr=(\S+)`)
	gossipAddr = regexp.MustCompile(`msg="cluster mode: gossip" gossip=(\S+) admin=(\S+)`)
)

// waitLog waits until re matches a process's log.
func waitLog(t *testing.T, logs *syncBuffer, re *regexp.Regexp, what string) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen:\n%s", what, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startProc(t *testing.T, bin string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	return startCmd(t, exec.Command(bin, args...))
}

// startCmd starts cmd, collecting its stderr, and kills it when the test
// ends.
func startCmd(t *testing.T, cmd *exec.Cmd) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	logs := newSyncBuffer()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, logs
}

// TestGossipClusterProcesses runs `coordinator serve` with gossip and an
// admin API and four expert nodes that join it by gossip, all processes,
// each in its own network namespace when run as root (else on loopback
// ports; -netns decides), with mutual TLS on every gRPC connection (the
// admin API's too), and keeps generating over HTTP while one node is
// drained and stopped, one joins and one is killed. After each step the
// placement has every expert on R = 2 live nodes and a greedy completion
// is the same text as at the start; no request fails. `make cluster-test`
// runs it.
func TestGossipClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	model := testenv.Shared(t, "testdata/models/deepseek2-384.F16.gguf")
	bin := binaries(t)
	tnet := newTestNet(t)
	var ips []net.IP
	for i := 1; i <= 16; i++ {
		ips = append(ips, net.ParseIP(fmt.Sprintf("%s.%d", netSubnet, i)))
	}
	ca, certs := testpki.WriteIPs(t, t.TempDir(), ips, "ix")
	// Off loopback gossip needs its key, as the node API needs TLS.
	keyFile := filepath.Join(t.TempDir(), "gossip-key")
	if err := os.WriteFile(keyFile, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tls := []string{"--tls-ca", ca, "--tls-cert", certs["ix"][0], "--tls-key", certs["ix"][1], "--gossip-key-file", keyFile}

	// The coordinator's HTTP and admin APIs are on loopback in its own
	// network; gossip and expert calls cross to the nodes'.
	cm := tnet.member(t, "coord")
	_, clogs := startCmd(t, cm.command(filepath.Join(bin, "coordinator"), append([]string{"serve", "-m", model, "--http", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--gossip", net.JoinHostPort(cm.IP, "0"), "--replicas", "2", "--local-experts=false",
		"-t", "1", "--slots", "2", "--ctx", "256", "--rebalance-interval", "1s", "--cluster-id", "coord", "--alias", "m"}, tls...)...))
	m := waitLog(t, clogs, gossipAddr, "coordinator gossip")
	seed, adminAddr := m[1], cm.forward(t, m[2])
	base := "http://" + cm.forward(t, waitLog(t, clogs, httpAddr, "coordinator HTTP")[1])

	nodes := map[string]*exec.Cmd{}
	start := func(id string) {
		nm := tnet.member(t, id)
		cmd, logs := startCmd(t, nm.command(filepath.Join(bin, "expertnode"), append([]string{"-m", model,
			"--listen", net.JoinHostPort(nm.IP, "0"), "--id", id,
			"--gossip", net.JoinHostPort(nm.IP, "0"), "--join", seed, "--threads", "1", "--health-listen", "off"}, tls...)...))
		addr := waitLog(t, logs, servingAddr, id+" serving")[1]
		t.Logf("%s serving on %s (%s)", id, addr, tnet.Mode)
		nodes[id] = cmd
	}
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		start(id)
	}
	acfg := rpc.DefaultClientConfig()
	acfg.Security = rpc.Security{CAFile: ca, CertFile: certs["ix"][0], KeyFile: certs["ix"][1]}
	conn, err := rpc.Dial(adminAddr, acfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := ixv1.NewAdminServiceClient(conn)
	ctx := context.Background()
	// settled waits until the placement holds every expert R times on
	// exactly the given alive nodes, each holding some.
	settled := func(step string, alive ...string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			st, err := admin.ClusterStatus(ctx, &ixv1.ClusterStatusRequest{})
			ok := err == nil && st.GetUnderReplicated() == 0
			n := 0
			for _, nd := range st.GetNodes() {
				if nd.GetState() == ixv1.NodeState_NODE_STATE_ALIVE && nd.GetExperts() > 0 {
					n++
				}
			}
			if ok && n == len(alive) {
				t.Logf("%s: %d nodes, epoch %d", step, n, st.GetEpoch())
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: placement did not settle on %v: %v %v\n%s", step, alive, st, err, clogs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	complete := func() (string, error) {
		body := `{"model":"m","prompt":"The cluster","max_tokens":12,"temperature":0}`
		resp, err := http.Post(base+"/v1/completions", "application/json", bytes.NewBufferString(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var r struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Choices) == 0 {
			return "", fmt.Errorf("bad response: %v", err)
		}
		return r.Choices[0].Text, nil
	}
	settled("start", "n1", "n2", "n3", "n4")
	want, err := complete()
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		got, err := complete()
		if err != nil || got != want {
			t.Fatalf("%s: completion %q, %v; want %q", step, got, err, want)
		}
	}

	// Generate in the background through every step.
	var calls, failures atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := complete()
			if err == nil && got != want {
				err = fmt.Errorf("completion %q, want %q", got, want)
			}
			if err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			calls.Add(1)
		}
	}()

	if _, err := admin.DrainNode(ctx, &ixv1.DrainNodeRequest{Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	settled("n1 drained", "n2", "n3", "n4")
	check("n1 drained")
	nodes["n1"].Process.Signal(syscall.SIGTERM)
	nodes["n1"].Wait()

	start("n5")
	settled("n5 joined", "n2", "n3", "n4", "n5")
	check("n5 joined")

	nodes["n2"].Process.Signal(syscall.SIGKILL)
	settled("n2 killed", "n3", "n4", "n5")
	check("n2 killed")

	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d background completions failed; first: %v\n%s", n, calls.Load(), firstErr.Load(), clogs.String())
	}
	t.Logf("%d background completions, none failed (network: %s)", calls.Load(), tnet.Mode)
}
