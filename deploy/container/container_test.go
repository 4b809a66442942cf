package container

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/internal/testpki"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

var (
	imageRef   = flag.String("image", "", "image to run (make container-test builds it with make image); empty: skip")
	engineName = flag.String("engine", "podman", "container engine that runs the test (podman)")
)

// Where the containers find their files: the secrets as a Kubernetes
// secret volume lays them out (kubernetes.io/tls keys for the
// certificates), the model as a read-only volume.
const (
	tlsDir     = "/etc/ix/tls"
	secretsDir = "/etc/ix/secrets"
	modelsDir  = "/models"
	modelFile  = modelsDir + "/kimi-k2-mini-L3.Q4_K_M.gguf"
	httpPort   = "8080"
	adminPort  = "7071"
	rpcPort    = "7070"
	gossipPort = "7946"
	healthPort = "7079"
	// The completion every phase compares: greedy, long enough that a
	// node can be killed while it streams.
	prompt    = "The cluster"
	maxTokens = 400
)

// engine runs one container engine's CLI.
type engine struct {
	bin string
	// run are the flags every `run` gets: the runtime and rlimits this
	// kind of machine needs (see runFlags).
	run []string
}

// findEngine returns the engine named by -engine when its `info`
// succeeds. Only podman runs the test: it gives containers fixed
// addresses on a network with a subnet of its choosing (docker needs the
// subnet chosen by hand for --ip); `make image` builds with docker too.
func findEngine() (*engine, error) {
	n := *engineName
	if n != "podman" {
		return nil, fmt.Errorf("-engine %q: the test runs its containers with podman", n)
	}
	if _, err := exec.LookPath(n); err != nil {
		return nil, err
	}
	if out, err := exec.Command(n, "info").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s info: %v: %s", n, err, lastLine(out))
	}
	return &engine{bin: n, run: runFlags()}, nil
}

// runFlags are the flags every `podman run` gets: the runc runtime when it
// is installed (crun fails on cgroup v1/hybrid hosts such as CI's) and
// rlimits at or below the hard limits this host allows (podman's defaults
// exceed them and runc fails with "error setting rlimits").
func runFlags() []string {
	f := []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	if _, err := exec.LookPath("runc"); err == nil {
		f = append(f, "--runtime", "runc")
	}
	return f
}

// do runs the engine with args, returning its trimmed stdout; the error
// carries stderr.
func (e *engine) do(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", e.bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (e *engine) must(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.do(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cluster is the test's containers and what reaches them.
type cluster struct {
	t       *testing.T
	e       *engine
	image   string
	network string
	dir     string // host side of the mounts
	ips     map[string]string
	mu      sync.Mutex
	started []string // containers, removed at cleanup
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// TestContainerCluster runs the image as a coordinator and three expert
// nodes (replication 2, each node's --capacity below the whole model's
// experts) on a container network of its own and walks it through a
// failure: a greedy completion over HTTP; the same completion streamed
// while one node container is killed (same text, no failed request); a
// second node stopped so that some experts have no live holder (503 with
// Retry-After, the coordinator still up and not ready); both nodes
// started again (ready, the same text). It waits on the endpoints the
// manifests probe: /readyz on the coordinator's HTTP port and on each
// node's --health-listen port, published on 127.0.0.1.
func TestContainerCluster(t *testing.T) {
	if *imageRef == "" {
		t.Skip("needs a container image: run `make container-test` (it builds one with `make image` and passes -image)")
	}
	if testing.Short() {
		t.Skip("runs containers")
	}
	e, err := findEngine()
	if err != nil {
		// CI sets IX_REQUIRE_CONTAINERS where it installed podman: there
		// a missing engine is a failure, not a skip.
		if os.Getenv("IX_REQUIRE_CONTAINERS") != "" {
			t.Fatalf("no working podman although IX_REQUIRE_CONTAINERS is set: %v", err)
		}
		t.Skipf("no working podman: %v", err)
	}
	t.Logf("engine %s, image %s, run flags %q", e.bin, *imageRef, e.run)
	c := newCluster(t, e, *imageRef)

	t.Run("version", c.checkImage)

	c.makeModel()
	capacity := expertCapacity(t, filepath.Join(c.dir, "models", filepath.Base(modelFile)))

	coord := c.startCoordinator()
	nodes := []string{"node-1", "node-2", "node-3"}
	for _, n := range nodes {
		c.startNode(n, capacity)
	}
	base := "http://" + c.hostPort("coord", httpPort)
	for _, n := range nodes {
		c.waitHTTP(n, "http://"+c.hostPort(n, healthPort)+"/readyz", http.StatusOK)
	}
	c.waitHTTP(coord, base+"/readyz", http.StatusOK)
	admin := c.admin()
	c.settled(admin, "start", 3)
	c.ixctlStatus(nodes)

	want, err := complete(base)
	if err != nil {
		t.Fatalf("first completion: %v\n%s", err, c.logs(coord))
	}
	t.Logf("greedy completion (%d tokens): %.80q...", maxTokens, want)

	// Kill a node while the completion streams. (The stream runs alone:
	// rows decoded in one batch with other requests' rows may round
	// differently, and on random weights greedy text follows the rounding.)
	t.Log("phase: kill a node mid-stream")
	var chunks atomic.Int64
	stream := make(chan streamResult, 1)
	started := make(chan struct{})
	go func() { stream <- completeStream(base, 4, started, &chunks) }()
	select {
	case <-started:
	case r := <-stream:
		t.Fatalf("the stream ended before a node could be killed: %v", r.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no tokens streamed within 2m")
	}
	t.Log("killing node-2 mid-stream")
	c.e.must(t, "kill", c.name("node-2"))
	atKill := chunks.Load()
	r := <-stream
	if r.err != nil {
		t.Fatalf("the stream failed after node-2 was killed: %v\n%s", r.err, c.logs(coord))
	}
	if total := chunks.Load(); total <= atKill {
		t.Fatalf("the stream ended (%d chunks) before node-2 was killed: the kill was not mid-stream", total)
	}
	if r.text != want {
		t.Fatalf("streamed text with node-2 killed differs:\n got %q\nwant %q", r.text, want)
	}
	t.Logf("node-2 killed after %d streamed chunks; the stream went on to %d chunks, same text as without the failure",
		atKill, chunks.Load())
	if got, err := complete(base); err != nil || got != want {
		t.Fatalf("after node-2 was killed: completion %.80q..., %v; want %.80q...", got, err, want)
	}
	t.Log("a completion after the kill: same text")

	// Stop a second node: node-1 alone cannot hold every expert.
	t.Log("phase: stop node-3 so some experts have no live holder")
	c.e.must(t, "stop", "-t", "20", c.name("node-3"))
	c.wait503(base)
	if state := c.e.must(t, "inspect", "-f", "{{.State.Running}}", c.name(coord)); state != "true" {
		t.Fatalf("the coordinator container stopped (running=%s):\n%s", state, c.logs(coord))
	}
	c.waitHTTP(coord, base+"/readyz", http.StatusServiceUnavailable)
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatalf("coordinator down after uncovered experts: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("coordinator still up: /health %d %s", resp.StatusCode, bytes.TrimSpace(body))

	t.Log("phase: restart node-2 and node-3")
	c.e.must(t, "start", c.name("node-2"), c.name("node-3"))
	for _, n := range []string{"node-2", "node-3"} {
		c.waitHTTP(n, "http://"+c.hostPort(n, healthPort)+"/readyz", http.StatusOK)
	}
	c.waitHTTP(coord, base+"/readyz", http.StatusOK)
	c.settled(admin, "restarted", 3)
	got, err := complete(base)
	if err != nil || got != want {
		t.Fatalf("after the restart: completion %.80q..., %v; want %.80q...\n%s", got, err, want, c.logs(coord))
	}
	t.Log("recovered: ready again, same greedy text")
}

// newCluster makes the host directories, the network and the secrets.
func newCluster(t *testing.T, e *engine, image string) *cluster {
	dir := t.TempDir()
	c := &cluster{t: t, e: e, image: image, dir: dir, ips: map[string]string{}}
	var suffix [4]byte
	rand.Read(suffix[:])
	c.network = "ix-ct-" + hex.EncodeToString(suffix[:])
	// Cleanups run last in, first out: the containers go before the network.
	c.e.must(t, "network", "create", c.network)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.e.do(ctx, "network", "rm", "-f", c.network); err != nil {
			t.Errorf("removing network: %v", err)
		}
	})
	t.Cleanup(c.removeAll)
	subnet := c.subnet()
	t.Logf("network %s, subnet %s", c.network, subnet)
	addr := subnet.Addr().Next() // .1 is the gateway
	var ips []net.IP
	for _, n := range []string{"coord", "node-1", "node-2", "node-3"} {
		addr = addr.Next()
		c.ips[n] = addr.String()
		ips = append(ips, net.IP(addr.AsSlice()))
	}

	// The secrets, as a Kubernetes secret volume holds them: world-
	// readable files (defaultMode 0644) in a directory mounted read-only.
	for _, d := range []string{"pki", "tls", "secrets", "models"} {
		mkdir(t, filepath.Join(dir, d), 0o755)
	}
	ca, certs := testpki.WriteIPs(t, filepath.Join(dir, "pki"), ips, "ix")
	copyFile(t, ca, filepath.Join(dir, "tls", "ca.crt"))
	copyFile(t, certs["ix"][0], filepath.Join(dir, "tls", "tls.crt"))
	copyFile(t, certs["ix"][1], filepath.Join(dir, "tls", "tls.key"))
	var token, key [32]byte
	rand.Read(token[:])
	rand.Read(key[:])
	writeFile(t, filepath.Join(dir, "secrets", "token"), hex.EncodeToString(token[:])+"\n")
	writeFile(t, filepath.Join(dir, "secrets", "gossip-key"), base64.StdEncoding.EncodeToString(key[:])+"\n")
	return c
}

// subnet reads the IPv4 subnet podman gave the network.
func (c *cluster) subnet() netip.Prefix {
	out := c.e.must(c.t, "network", "inspect", c.network)
	var nets []struct {
		Subnets []struct {
			Subnet string `json:"subnet"`
		} `json:"subnets"`
	}
	if err := json.Unmarshal([]byte(out), &nets); err != nil || len(nets) != 1 {
		c.t.Fatalf("network inspect %s: %v\n%s", c.network, err, out)
	}
	for _, s := range nets[0].Subnets {
		if p, err := netip.ParsePrefix(s.Subnet); err == nil && p.Addr().Is4() && p.Bits() <= 28 {
			return p.Masked()
		}
	}
	c.t.Fatalf("network %s has no IPv4 subnet: %s", c.network, out)
	return netip.Prefix{}
}

func mkdir(t *testing.T, d string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(d, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

func (c *cluster) name(n string) string { return c.network + "-" + n }

// mounts are the secret and model volumes, read-only.
func (c *cluster) mounts() []string {
	return []string{
		"-v", filepath.Join(c.dir, "tls") + ":" + tlsDir + ":ro",
		"-v", filepath.Join(c.dir, "secrets") + ":" + secretsDir + ":ro",
		"-v", filepath.Join(c.dir, "models") + ":" + modelsDir + ":ro",
	}
}

// hardening is what the manifests' securityContext asks: the image's
// non-root user, a read-only root filesystem with an emptyDir-like /tmp,
// no capabilities, no privilege escalation.
var hardening = []string{"--read-only", "--tmpfs", "/tmp:rw,size=64m,mode=1777", "--cap-drop", "ALL",
	"--security-opt", "no-new-privileges"}

// security are the TLS, token and gossip key flags every member gets.
var security = []string{
	"--tls-ca", tlsDir + "/ca.crt", "--tls-cert", tlsDir + "/tls.crt", "--tls-key", tlsDir + "/tls.key",
	"--token-file", secretsDir + "/token", "--gossip-key-file", secretsDir + "/gossip-key",
}

// checkImage checks the image's configuration (the numeric non-root
// user, PATH, no entrypoint, the version label) and that each binary
// reports the VERSION file's version.
func (c *cluster) checkImage(t *testing.T) {
	v, err := os.ReadFile(filepath.Join("..", "..", "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(v))
	out := c.e.must(t, "image", "inspect", "--format", "{{json .Config}}", c.image)
	var cfg struct {
		User       string
		Env        []string
		Entrypoint []string
		Cmd        []string
		Labels     map[string]string
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("image config %s: %v", out, err)
	}
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", cfg.User)
	}
	if !slices.Contains(cfg.Env, "PATH=/usr/local/bin") {
		t.Errorf("image env %q: want PATH=/usr/local/bin", cfg.Env)
	}
	if len(cfg.Entrypoint) > 0 || len(cfg.Cmd) > 0 {
		t.Errorf("image entrypoint %q, cmd %q: want none (the binary is named on the command line)", cfg.Entrypoint, cfg.Cmd)
	}
	if l := cfg.Labels["org.opencontainers.image.version"]; l != want {
		t.Errorf("image label org.opencontainers.image.version %q, want %q", l, want)
	}
	for _, bin := range []string{"coordinator", "expertnode", "ixctl"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := c.e.do(ctx, append(append(append([]string{"run", "--rm"}, c.e.run...), hardening...), c.image, bin, "--version")...)
		cancel()
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s --version in the image: %q, %v; want the version %s", bin, out, err, want)
			continue
		}
		t.Logf("%s --version: %s", bin, out)
	}
}

// makeModel writes a small Kimi-K2-shaped MoE model with the image's
// ixctl into the models volume (mounted writable for this one run).
func (c *cluster) makeModel() {
	t := c.t
	host := filepath.Join(c.dir, "models")
	mkdir(t, host, 0o777)
	args := append(append(append([]string{"run", "--rm"}, c.e.run...), hardening...),
		"-v", host+":"+modelsDir, c.image, "ixctl", "synth", "--preset", "kimi-k2-mini", "--layers", "3",
		"--dim", "256", "--experts", "64", "--type", "Q4_K_M", "--seed", "1", "--no-progress", "--out", modelFile)
	out := c.e.must(t, args...)
	t.Logf("model: %s", lastLine([]byte(out)))
	mkdir(t, host, 0o755)
}

// expertCapacity returns a node capacity that holds three quarters of
// the model's routed experts: three nodes hold every expert twice
// (R = 2), two still hold every expert once, one alone cannot.
func expertCapacity(t *testing.T, path string) int64 {
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := router.InfoFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range router.PlanConfigFromFile(f, info).ExpertBytes {
		total += b * int64(info.Experts)
	}
	if total == 0 {
		t.Fatal("the model has no routed experts")
	}
	t.Logf("routed experts: %d bytes; node capacity %d", total, total*3/4)
	return total * 3 / 4
}

// start runs a detached container named for member n with args after the
// image, publishing ports on 127.0.0.1.
func (c *cluster) start(n string, ports []string, args ...string) string {
	run := append([]string{"run", "-d", "--name", c.name(n), "--hostname", n, "--network", c.network, "--ip", c.ips[n]}, c.e.run...)
	run = append(append(run, hardening...), c.mounts()...)
	for _, p := range ports {
		run = append(run, "-p", "127.0.0.1::"+p)
	}
	run = append(append(run, c.image), args...)
	c.mu.Lock()
	c.started = append(c.started, c.name(n))
	c.mu.Unlock()
	c.e.must(c.t, run...)
	c.t.Logf("started %s at %s", n, c.ips[n])
	return n
}

func (c *cluster) startCoordinator() string {
	ip := c.ips["coord"]
	return c.start("coord", []string{httpPort, adminPort}, append([]string{"coordinator", "serve", "-m", modelFile,
		"--http", "0.0.0.0:" + httpPort, "--admin", net.JoinHostPort(ip, adminPort),
		"--gossip", net.JoinHostPort(ip, gossipPort), "--replicas", "2", "--local-experts=false",
		"--rebalance-interval", "1s", "--wait-ready", "2s", "--cluster-id", "coord", "--alias", "m",
		"-t", "1", "--slots", "4", "--ctx", "512"}, security...)...)
}

func (c *cluster) startNode(n string, capacity int64) {
	ip := c.ips[n]
	c.start(n, []string{healthPort}, append([]string{"expertnode", "-m", modelFile, "--id", n,
		"--listen", net.JoinHostPort(ip, rpcPort), "--health-listen", "0.0.0.0:" + healthPort,
		"--gossip", net.JoinHostPort(ip, gossipPort), "--join", net.JoinHostPort(c.ips["coord"], gossipPort),
		"--capacity", strconv.FormatInt(capacity, 10), "--threads", "1"}, security...)...)
}

// hostPort is the 127.0.0.1 address member n's port is published on (asked
// anew each time: a restarted container may get another).
func (c *cluster) hostPort(n, port string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.e.do(ctx, "port", c.name(n), port+"/tcp")
	for _, l := range strings.Split(out, "\n") {
		if err == nil && strings.HasPrefix(l, "127.0.0.1:") {
			return l
		}
	}
	c.t.Fatalf("%s: port %s not published on 127.0.0.1 (%q, %v); has it exited? its log:\n%s", n, port, out, err, c.logs(n))
	return ""
}

// logs returns member n's log (its stderr and stdout).
func (c *cluster) logs(n string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.e.bin, "logs", c.name(n)).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(logs of %s: %v)", n, err)
	}
	return string(out)
}

// removeAll removes the containers, first printing their logs' tails when
// the test failed.
func (c *cluster) removeAll() {
	c.mu.Lock()
	names := c.started
	c.mu.Unlock()
	for _, n := range names {
		if c.t.Failed() && exec.Command(c.e.bin, "container", "exists", n).Run() == nil {
			l := strings.Split(strings.TrimSpace(c.logs(strings.TrimPrefix(n, c.network+"-"))), "\n")
			c.t.Logf("--- %s (last lines)\n%s", n, strings.Join(l[max(0, len(l)-30):], "\n"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if _, err := c.e.do(ctx, "rm", "--force", "--ignore", "--time", "0", n); err != nil {
			c.t.Errorf("removing container: %v", err)
		}
		cancel()
	}
}

// ixctlStatus runs `ixctl status` from the image on the cluster's network,
// as an operator's pod would, and checks that it lists the nodes.
func (c *cluster) ixctlStatus(nodes []string) {
	c.t.Helper()
	n := "ixctl"
	c.mu.Lock()
	c.started = append(c.started, c.name(n))
	c.mu.Unlock()
	run := append([]string{"run", "--rm", "--name", c.name(n), "--network", c.network}, c.e.run...)
	run = append(append(append(run, hardening...), c.mounts()...), c.image, "ixctl", "status",
		"--coordinator", net.JoinHostPort(c.ips["coord"], adminPort), "--timeout", "30s",
		"--tls-ca", tlsDir+"/ca.crt", "--tls-cert", tlsDir+"/tls.crt", "--tls-key", tlsDir+"/tls.key",
		"--token-file", secretsDir+"/token")
	out := c.e.must(c.t, run...)
	for _, nd := range nodes {
		if !strings.Contains(out, nd) {
			c.t.Fatalf("ixctl status does not list %s:\n%s", nd, out)
		}
	}
	c.t.Logf("ixctl status (in a container):\n%s", out)
}

// waitHTTP waits until GET url answers status, failing with member n's
// log after a minute.
func (c *cluster) waitHTTP(n, url string, status int) {
	c.t.Helper()
	client := http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(time.Minute)
	last := ""
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status {
				c.t.Logf("%s: GET %s: %d %s", n, url[strings.LastIndexByte(url, '/'):], status, bytes.TrimSpace(body))
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: GET %s never answered %d (last: %s)\n%s", n, url, status, last, c.logs(n))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// admin dials the coordinator's admin API through its published port with
// the cluster's certificate and token.
func (c *cluster) admin() ixv1.AdminServiceClient {
	token, err := os.ReadFile(filepath.Join(c.dir, "secrets", "token"))
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := rpc.DefaultClientConfig()
	cfg.Security = rpc.Security{CAFile: filepath.Join(c.dir, "tls", "ca.crt"), CertFile: filepath.Join(c.dir, "tls", "tls.crt"),
		KeyFile: filepath.Join(c.dir, "tls", "tls.key"), Token: strings.TrimSpace(string(token))}
	conn, err := rpc.Dial(c.hostPort("coord", adminPort), cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return ixv1.NewAdminServiceClient(conn)
}

// settled waits until the placement holds every expert R times over n
// alive nodes that each hold some.
func (c *cluster) settled(admin ixv1.AdminServiceClient, step string, n int) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := admin.ClusterStatus(ctx, &ixv1.ClusterStatusRequest{})
		cancel()
		alive := 0
		for _, nd := range st.GetNodes() {
			if nd.GetState() == ixv1.NodeState_NODE_STATE_ALIVE && nd.GetExperts() > 0 {
				alive++
			}
		}
		if err == nil && st.GetUnderReplicated() == 0 && alive == n {
			c.t.Logf("%s: placement settled on %d nodes, epoch %d", step, n, st.GetEpoch())
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: placement did not settle on %d nodes: %v %v\n%s", step, n, st, err, c.logs("coord"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// wait503 waits until a completion is refused with 503 and a Retry-After
// header, as it must be once some experts have no live holder.
func (c *cluster) wait503(base string) {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := post(base, false)
		if err != nil {
			c.t.Fatalf("completion with experts uncovered: %v (the coordinator must answer 503, not fail)\n%s", err, c.logs("coord"))
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			ra := resp.Header.Get("Retry-After")
			if ra == "" {
				c.t.Fatalf("503 without Retry-After: %s", body)
			}
			c.t.Logf("503 Retry-After: %s: %s", ra, bytes.TrimSpace(body))
			return
		}
		if resp.StatusCode != http.StatusOK {
			c.t.Fatalf("completion with experts uncovered: %d %s; want 503", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("completions still succeed 2m after node-3 stopped\n%s", c.logs("coord"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func post(base string, stream bool) (*http.Response, error) {
	body, _ := json.Marshal(map[string]any{"model": "m", "prompt": prompt, "max_tokens": maxTokens,
		"temperature": 0, "stream": stream})
	client := http.Client{Timeout: 3 * time.Minute}
	return client.Post(base+"/v1/completions", "application/json", bytes.NewReader(body))
}

// complete returns the greedy completion of prompt.
func complete(base string) (string, error) {
	resp, err := post(base, false)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var r struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) != 1 {
		return "", fmt.Errorf("bad response %.200s: %v", b, err)
	}
	return r.Choices[0].Text, nil
}

type streamResult struct {
	text string
	err  error
}

// completeStream streams the greedy completion of prompt, counting the
// chunks received in chunks and closing started once there are n.
func completeStream(base string, n int64, started chan<- struct{}, chunks *atomic.Int64) streamResult {
	var r streamResult
	resp, err := post(base, true)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		r.err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		return r
	}
	var text strings.Builder
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			break
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			r.err = fmt.Errorf("bad event %q: %v", line, err)
			return r
		}
		if ev.Error != nil {
			r.err = fmt.Errorf("error event after %d chunks: %s", chunks.Load(), ev.Error.Message)
			return r
		}
		for _, ch := range ev.Choices {
			text.WriteString(ch.Text)
		}
		if chunks.Add(1) == n {
			close(started)
		}
	}
	r.text = text.String()
	if err := sc.Err(); err != nil {
		r.err = err
	} else if !done {
		r.err = fmt.Errorf("stream ended after %d chunks without [DONE]", chunks.Load())
	}
	return r
}
