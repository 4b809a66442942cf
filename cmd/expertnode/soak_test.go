package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

var (
	soakFor     = flag.Duration("soak", 0, "run TestSoak for this long (0: skip it); `make soak SOAK=10m` sets it")
	soakSeed    = flag.Uint64("soak.seed", 1, "seed of TestSoak's faults and requests")
	soakStreams = flag.Int("soak.streams", 8, "concurrent client streams of TestSoak")
	soakOut     = flag.String("soak.out", "", "write TestSoak's table to PATH.txt and its numbers to PATH.json")
)

// The soak's rule for "flat" memory and goroutines, per process
// (incarnation): drop the warm-up (the first tenth of its samples, at
// least soakWarmup), then the median of the last quarter of the rest may
// exceed the median of the first quarter by at most soakRSSGrowth of RSS
// and soakGoroutineGrowth goroutines. An incarnation with fewer than
// soakMinSamples samples after warm-up (a node restarted late) is
// reported, not judged.
const (
	soakSample          = 2 * time.Second
	soakWarmup          = 3
	soakMinSamples      = 8
	soakRSSGrowth       = 0.25
	soakGoroutineGrowth = 50
	soakMaxAttempts     = 20
	soakMaxTokens       = 32
	// fewer slots and queue places than streams: some requests get 429
	// and retry after its Retry-After
	soakSlots = 4
	soakQueue = 2
)

// soakPrompts are the requests' prompts; greedy requests of each are
// compared with single-node mode's answer.
var soakPrompts = []string{
	"The cluster", "Once upon a time", "In the beginning", "A node failed and",
	"Replicas keep", "The coordinator", "Gossip says", "Every expert",
}

// TestSoak runs `coordinator serve` with gossip and three expert nodes
// (replication 2) as processes under -soak.streams concurrent client
// streams for -soak, while a seeded schedule kills (SIGKILL, restart),
// hangs (SIGSTOP, SIGCONT), drains (ixctl drain, stop, restart) and
// restarts (SIGTERM, restart) nodes at random, at most two at a time. It
// checks that every request ends with 200 or a retryable status (429 or
// 503 with Retry-After, which the client honours and retries; a stream
// ending with an experts_unavailable error event counts as retryable
// too), that every greedy answer is the text single-node `serve` gives,
// that the coordinator never exits, that RSS and goroutines of every
// process stay flat (the rule above), and that the cluster answers again
// once the faults stop. It logs a table (and writes -soak.out). `make
// soak` runs it; without -soak it skips.
func TestSoak(t *testing.T) {
	if *soakFor <= 0 {
		t.Skip("soak test: run with -soak DURATION (make soak SOAK=10m)")
	}
	// make soak runs go test with -timeout 0 (the duration is a flag):
	// this is the timeout, with a stack dump like go test's
	watchdog := time.AfterFunc(*soakFor+15*time.Minute, func() {
		panic(fmt.Sprintf("TestSoak still running %v after its %v soak", 15*time.Minute, *soakFor))
	})
	defer watchdog.Stop()
	bin := binaries(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "kimi.gguf")
	synth := exec.Command(filepath.Join(bin, "ixctl"), "synth", "--preset", "kimi-k2-mini", "--layers", "3", "--dim", "256", "--ff", "256",
		"--heads", "2", "--experts", "32", "--expert-ff", "32", "--vocab", "512", "--q-lora", "64", "--kv-lora", "64",
		"--type", "Q8_0", "--seed", "7", "--out", model, "--no-progress")
	if out, err := synth.CombinedOutput(); err != nil {
		t.Fatalf("ixctl synth: %v\n%s", err, out)
	}
	s := &soak{t: t, bin: bin, model: model, rng: rand.New(rand.NewPCG(*soakSeed, 0x50a6)), start: time.Now(),
		outcomes: map[string]int{}, retries: map[string]int{}, faultsBy: map[string]int{}}
	s.reference()

	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(s.rng.UintN(256))
	}
	s.gossipKey = base64.StdEncoding.EncodeToString(key)
	s.startCoordinator()
	for i := 1; i <= 3; i++ {
		s.nodes = append(s.nodes, &soakNode{slot: fmt.Sprintf("n%d", i), id: fmt.Sprintf("n%d", i),
			listen: freePort(t), gossip: freePort(t), health: freePort(t)})
	}
	for _, n := range s.nodes {
		if err := s.startNode(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.waitReady(90 * time.Second); err != nil {
		t.Fatalf("cluster not ready: %v\n%s", err, lastLines(s.coordLogs.String(), 20))
	}
	t.Logf("cluster ready at %s: coordinator %s, nodes %v; soaking for %v, %d streams, seed %d",
		s.since(), s.base, s.nodeIDs(), *soakFor, *soakStreams, *soakSeed)

	ctx, cancel := context.WithTimeout(context.Background(), *soakFor)
	defer cancel()
	s.soakStart = time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.sampleLoop(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); s.faultLoop(ctx) }()
	for i := range *soakStreams {
		r := rand.New(rand.NewPCG(*soakSeed, uint64(i)+1))
		wg.Add(1)
		go func() { defer wg.Done(); s.client(ctx, r) }()
	}
	wg.Wait()
	s.soakEnd = time.Now()

	// The faults are over and every node is back: the cluster answers
	// every greedy prompt with the reference text again.
	if err := s.waitReady(90 * time.Second); err != nil {
		s.fail("recovery: cluster not ready after the faults: %v", err)
	} else {
		for i, p := range soakPrompts {
			got, code, err := s.completeOnce(s.base, p)
			if err != nil || code != http.StatusOK || got != s.want[i] {
				s.fail("recovery: greedy %q: %d %q %v, want %q", p, code, got, err, s.want[i])
			}
		}
	}
	s.failovers, _ = metricSum(s.base+"/metrics", "ix_router_failovers_total")
	s.rpcErrors, _ = metricSum(s.base+"/metrics", "ix_router_rpc_errors_total")
	if s.coordExited() {
		s.fail("the coordinator exited: %s", lastLines(s.coordLogs.String(), 5))
	}
	s.report()
	if len(s.failures) > 0 {
		t.Errorf("%d soak failures; first %d:\n%s\ncoordinator log tail:\n%s", len(s.failures), min(10, len(s.failures)),
			strings.Join(s.failures[:min(10, len(s.failures))], "\n"), lastLines(s.coordLogs.String(), 30))
	}
}

// soak is the state of one soak run.
type soak struct {
	t         *testing.T
	bin       string
	model     string
	gossipKey string
	start     time.Time
	soakStart time.Time
	soakEnd   time.Time

	rngMu sync.Mutex
	rng   *rand.Rand

	want []string // single-node greedy text of each prompt

	coord      *exec.Cmd
	coordDone  chan struct{}
	coordLogs  *syncBuffer
	base       string // http://host:port of the coordinator
	admin      string
	gossipSeed string

	mu       sync.Mutex
	nodes    []*soakNode
	procs    []*soakProc // every process incarnation, in start order
	faults   []string    // the fault log
	faultsBy map[string]int
	failures []string
	outcomes map[string]int // "ok", "retryable (gave up)", failure causes
	retries  map[string]int // retried attempts by cause
	requests int
	latency  []time.Duration
	ttft     []time.Duration
	greedyOK int

	failovers, rpcErrors float64 // the router's counters at the end
}

// soakNode is one of the three node slots; its process changes on
// restarts.
type soakNode struct {
	slot                   string
	id                     string
	listen, gossip, health string
	busy                   bool // a fault is on it
	proc                   *soakProc
}

// soakProc is one process incarnation and its samples.
type soakProc struct {
	name    string
	slot    string // "coordinator" or the node slot
	cmd     *exec.Cmd
	logs    *syncBuffer
	metrics string // URL of its /metrics
	done    chan struct{}
	rss     []float64 // bytes
	gor     []float64
}

func (s *soak) since() string { return time.Since(s.start).Truncate(time.Millisecond).String() }

func (s *soak) fail(format string, args ...any) {
	msg := fmt.Sprintf("%s "+format, append([]any{s.since()}, args...)...)
	s.mu.Lock()
	s.failures = append(s.failures, msg)
	s.mu.Unlock()
	s.t.Log("FAIL " + msg)
}

func (s *soak) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// between is a seeded duration in [lo, hi).
func (s *soak) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.intn(int(hi-lo)/int(time.Millisecond)))*time.Millisecond
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// gossip takes UDP on the same port: make sure it is free too
	u, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		return freePort(t)
	}
	u.Close()
	return l.Addr().String()
}

// reference computes each prompt's greedy text with `coordinator serve`
// alone on the model (single-node mode, one request at a time).
func (s *soak) reference() {
	t := s.t
	_, logs := startCmd(t, exec.Command(filepath.Join(s.bin, "coordinator"), "serve", "-m", s.model, "--http", "127.0.0.1:0",
		"-t", "1", "--slots", "1", "--ctx", "512", "--alias", "m"))
	base := "http://" + waitLog(t, logs, httpAddr, "single-node serve")[1]
	for _, p := range soakPrompts {
		text, code, err := s.completeOnce(base, p)
		if err != nil || code != http.StatusOK {
			t.Fatalf("single-node reference for %q: %d %v\n%s", p, code, err, logs.String())
		}
		s.want = append(s.want, text)
	}
	t.Logf("single-node reference: %d greedy prompts, %d tokens each", len(s.want), soakMaxTokens)
}

// completeOnce sends one non-streamed greedy completion.
func (s *soak) completeOnce(base, prompt string) (string, int, error) {
	body, _ := json.Marshal(map[string]any{"model": "m", "prompt": prompt, "max_tokens": soakMaxTokens, "temperature": 0})
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Post(base+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, fmt.Errorf("%s", bytes.TrimSpace(b))
	}
	var r struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &r); err != nil || len(r.Choices) == 0 {
		return "", resp.StatusCode, fmt.Errorf("bad response %q: %v", b, err)
	}
	return r.Choices[0].Text, resp.StatusCode, nil
}

func (s *soak) startCoordinator() {
	t := s.t
	cmd := exec.Command(filepath.Join(s.bin, "coordinator"), "serve", "-m", s.model, "--http", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--gossip-key", s.gossipKey, "--replicas", "2",
		"--local-experts=false", "-t", "1", "--slots", strconv.Itoa(soakSlots), "--queue", strconv.Itoa(soakQueue), "--ctx", "512", "--rebalance-interval", "1s",
		"--node-timeout", "5s", "--alias", "m")
	logs := newSyncBuffer()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.coord, s.coordLogs, s.coordDone = cmd, logs, make(chan struct{})
	go func() { cmd.Wait(); close(s.coordDone) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.coordDone
	})
	m := waitLog(t, logs, gossipAddr, "coordinator gossip")
	s.gossipSeed, s.admin = m[1], m[2]
	s.base = "http://" + waitLog(t, logs, httpAddr, "coordinator HTTP")[1]
	p := &soakProc{name: "coordinator", slot: "coordinator", cmd: cmd, logs: logs, metrics: s.base + "/metrics", done: s.coordDone}
	s.procs = append(s.procs, p)
}

func (s *soak) coordExited() bool {
	select {
	case <-s.coordDone:
		return true
	default:
		return false
	}
}

// startNode starts node n's process (its current id, its fixed ports) and
// waits until it serves.
func (s *soak) startNode(n *soakNode) error {
	cmd := exec.Command(filepath.Join(s.bin, "expertnode"), "-m", s.model, "--listen", n.listen, "--id", n.id,
		"--gossip", n.gossip, "--join", s.gossipSeed, "--gossip-key", s.gossipKey, "--host", "soak-"+n.slot,
		"--threads", "1", "--health-listen", n.health, "--metrics-listen", n.health, "--shutdown-timeout", "5s")
	logs := newSyncBuffer()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &soakProc{name: n.id, slot: n.slot, cmd: cmd, logs: logs, metrics: "http://" + n.health + "/metrics", done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	s.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		<-p.done
	})
	s.mu.Lock()
	n.proc = p
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for !servingAddr.MatchString(logs.String()) {
		select {
		case <-p.done:
			return fmt.Errorf("node %s exited while starting: %v\n%s", n.id, cmd.ProcessState, lastLines(logs.String(), 10))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s did not serve within 60s:\n%s", n.id, lastLines(logs.String(), 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (s *soak) nodeIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, n := range s.nodes {
		ids = append(ids, n.id)
	}
	return ids
}

// waitReady waits until the coordinator's /readyz is 200.
func (s *soak) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		if s.coordExited() {
			return errors.New("the coordinator exited")
		}
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("/readyz after %v: %s", d, last)
}

// logFault records one fault step.
func (s *soak) logFault(kind, format string, args ...any) {
	msg := fmt.Sprintf("%8s %-8s ", time.Since(s.soakStart).Truncate(time.Millisecond), kind) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.faults = append(s.faults, msg)
	s.mu.Unlock()
	s.t.Log("fault " + msg)
}

// faultLoop injects a fault every 4-10 s on a node no other fault is
// on, at most two at a time, until ctx ends; then waits for the faults
// in progress to finish (every node is running again).
func (s *soak) faultLoop(ctx context.Context) {
	kinds := []string{"kill", "hang", "drain", "restart"}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.between(4*time.Second, 10*time.Second)):
		}
		s.mu.Lock()
		var free []*soakNode
		busy := 0
		for _, n := range s.nodes {
			if n.busy {
				busy++
			} else {
				free = append(free, n)
			}
		}
		if busy >= 2 || len(free) == 0 {
			s.mu.Unlock()
			continue
		}
		n := free[s.intn(len(free))]
		kind := kinds[s.intn(len(kinds))]
		n.busy = true
		s.faultsBy[kind]++
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.fault(kind, n)
			s.mu.Lock()
			n.busy = false
			s.mu.Unlock()
		}()
	}
}

// fault carries out one fault on n and brings it back.
func (s *soak) fault(kind string, n *soakNode) {
	p := n.proc
	switch kind {
	case "kill":
		d := s.between(time.Second, 6*time.Second)
		s.logFault(kind, "SIGKILL %s (pid %d), restart in %v", n.id, p.cmd.Process.Pid, d)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		time.Sleep(d)
	case "hang":
		d := s.between(2*time.Second, 12*time.Second)
		s.logFault(kind, "SIGSTOP %s (pid %d) for %v", n.id, p.cmd.Process.Pid, d)
		p.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(d)
		p.cmd.Process.Signal(syscall.SIGCONT)
		s.logFault(kind, "SIGCONT %s", n.id)
		return
	case "drain":
		// kubectl drain's order: ixctl drain (routing leaves it), SIGTERM.
		// The node comes back under the same id: leaving gossip ends the
		// drain (as a deleted Kubernetes node re-registers uncordoned).
		out, err := exec.Command(filepath.Join(s.bin, "ixctl"), "drain", n.id, "--coordinator", s.admin, "--timeout", "30s").CombinedOutput()
		if err != nil {
			s.logFault(kind, "ixctl drain %s: %v: %s", n.id, err, lastLines(string(out), 1))
		} else {
			s.logFault(kind, "ixctl drain %s done; SIGTERM", n.id)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	case "restart":
		s.logFault(kind, "SIGTERM %s (pid %d), restart", n.id, p.cmd.Process.Pid)
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	}
	for attempt := 1; ; attempt++ {
		err := s.startNode(n)
		if err == nil {
			s.logFault(kind, "%s running again (pid %d)", n.id, n.proc.cmd.Process.Pid)
			return
		}
		if attempt == 3 {
			s.fail("fault %s: node %s did not come back: %v", kind, n.id, err)
			return
		}
		s.logFault(kind, "restart of %s failed, retrying: %v", n.id, err)
		time.Sleep(time.Second)
	}
}

// sampleLoop samples every process's RSS and goroutines every
// soakSample until ctx ends.
func (s *soak) sampleLoop(ctx context.Context) {
	c := &http.Client{Timeout: time.Second}
	for {
		s.mu.Lock()
		var live []*soakProc
		for _, p := range s.procs {
			select {
			case <-p.done:
			default:
				live = append(live, p)
			}
		}
		s.mu.Unlock()
		for _, p := range live {
			rss, err := vmRSS(p.cmd.Process.Pid)
			if err != nil {
				continue
			}
			g, err := goroutines(c, p.metrics)
			if err != nil {
				continue // hung, or not up yet
			}
			s.mu.Lock()
			p.rss = append(p.rss, rss)
			p.gor = append(p.gor, g)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(soakSample):
		}
	}
}

// vmRSS is a process's resident set from /proc/PID/status, in bytes.
func vmRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// goroutines reads go_goroutines from a /metrics page.
func goroutines(c *http.Client, url string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no go_goroutines", url)
}

// metricSum sums the samples of a metric on a /metrics page.
func metricSum(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			f := strings.Fields(l)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				sum += v
			}
		}
	}
	return sum, sc.Err()
}

// attempt is the result of one HTTP attempt.
type attempt struct {
	status     int
	retryAfter time.Duration
	cause      string // why it was not 200 or not a good answer
	retryable  bool
	text       string
	ttft       time.Duration
}

// client sends requests until ctx ends: a seeded mix of greedy and
// sampled, streamed and not, each retried after Retry-After on 429/503
// (up to soakMaxAttempts attempts).
func (s *soak) client(ctx context.Context, r *rand.Rand) {
	hc := &http.Client{Timeout: 2 * time.Minute}
	for ctx.Err() == nil {
		pi := r.IntN(len(soakPrompts))
		greedy := r.IntN(2) == 0
		stream := r.IntN(2) == 0
		req := map[string]any{"model": "m", "prompt": soakPrompts[pi], "max_tokens": soakMaxTokens, "stream": stream}
		if greedy {
			req["temperature"] = 0
		} else {
			req["temperature"] = 0.8
			req["seed"] = r.IntN(1 << 30)
			req["max_tokens"] = 4 + r.IntN(2*soakMaxTokens)
		}
		body, _ := json.Marshal(req)
		outcome := ""
		for n := 1; ; n++ {
			t0 := time.Now()
			a := s.send(hc, body, stream)
			lat := time.Since(t0)
			if a.cause == "" && greedy && a.text != s.want[pi] {
				a.cause = "greedy text differs from single-node"
				s.fail("greedy %q (stream %v): %q, single-node %q", soakPrompts[pi], stream, a.text, s.want[pi])
			}
			if a.cause == "" {
				s.mu.Lock()
				s.latency = append(s.latency, lat)
				if stream {
					s.ttft = append(s.ttft, a.ttft)
				}
				if greedy {
					s.greedyOK++
				}
				s.mu.Unlock()
				outcome = "ok"
				break
			}
			if !a.retryable {
				if ctx.Err() != nil && a.status == 0 {
					outcome = "" // cut by the end of the soak: not counted
				} else {
					outcome = "FAILED: " + a.cause
					if a.cause != "greedy text differs from single-node" {
						s.fail("request %q: %s", soakPrompts[pi], a.cause)
					}
				}
				break
			}
			s.mu.Lock()
			s.retries[a.cause]++
			s.mu.Unlock()
			if n == soakMaxAttempts {
				outcome = "retryable, gave up after " + strconv.Itoa(n) + " attempts: " + a.cause
				break
			}
			select {
			case <-ctx.Done():
				outcome = "retryable, soak ended"
			case <-time.After(a.retryAfter):
			}
			if outcome != "" {
				break
			}
		}
		if outcome != "" {
			s.mu.Lock()
			s.requests++
			s.outcomes[outcome]++
			s.mu.Unlock()
		}
	}
}

// send makes one attempt.
func (s *soak) send(hc *http.Client, body []byte, stream bool) attempt {
	t0 := time.Now()
	resp, err := hc.Post(s.base+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return attempt{cause: "connection: " + shortErr(err)}
	}
	defer resp.Body.Close()
	a := attempt{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		var e struct {
			Error struct {
				Code *string `json:"code"`
			} `json:"error"`
		}
		json.Unmarshal(b, &e)
		code := "-"
		if e.Error.Code != nil {
			code = *e.Error.Code
		}
		a.cause = fmt.Sprintf("HTTP %d %s", resp.StatusCode, code)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
				a.retryable, a.retryAfter = true, time.Duration(ra)*time.Second
			} else {
				a.cause += " without Retry-After"
			}
		}
		return a
	}
	if !stream {
		var r struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Choices) == 0 {
			a.cause = "bad JSON body"
			return a
		}
		a.text = r.Choices[0].Text
		return a
	}
	sc := bufio.NewScanner(resp.Body)
	var text strings.Builder
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			a.text = text.String()
			return a
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Error *struct {
				Code *string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			a.cause = "bad stream event"
			return a
		}
		if ev.Error != nil {
			code := "-"
			if ev.Error.Code != nil {
				code = *ev.Error.Code
			}
			a.cause = "stream error event " + code
			// the same cause as 503 experts_unavailable, after the
			// first token: a client retries the request
			if code == "experts_unavailable" {
				a.retryable, a.retryAfter = true, 5*time.Second
			}
			return a
		}
		if a.ttft == 0 {
			a.ttft = time.Since(t0)
		}
		for _, c := range ev.Choices {
			text.WriteString(c.Text)
		}
	}
	a.cause = "stream ended without [DONE]"
	if err := sc.Err(); err != nil {
		a.cause += ": " + shortErr(err)
	}
	return a
}

// shortErr drops the URL from a client error.
func shortErr(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	return err.Error()
}

// soakFlat judges one series (its warm-up dropped) by the rule above;
// ok is false when it grew past the bound, judged is false when it is
// too short.
func soakFlat(xs []float64, grow func(first float64) float64) (first, last float64, judged, ok bool) {
	if len(xs) < soakMinSamples {
		return 0, 0, false, true
	}
	q := len(xs) / 4
	first, last = median(xs[:q]), median(xs[len(xs)-q:])
	return first, last, true, last <= grow(first)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// report judges the samples and logs (and writes) the table.
func (s *soak) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	type procRow struct {
		Name         string  `json:"name"`
		Incarnations int     `json:"incarnations"`
		Samples      int     `json:"samples"`
		RSSStartMiB  float64 `json:"rss_start_mib"`
		RSSEndMiB    float64 `json:"rss_end_mib"`
		GorStart     float64 `json:"goroutines_start"`
		GorEnd       float64 `json:"goroutines_end"`
		Judged       bool    `json:"judged"`
		Flat         bool    `json:"flat"`
		RSSFirstQMiB float64 `json:"rss_first_quarter_mib"`
		RSSLastQMiB  float64 `json:"rss_last_quarter_mib"`
		GorFirstQ    float64 `json:"goroutines_first_quarter"`
		GorLastQ     float64 `json:"goroutines_last_quarter"`
	}
	const mib = 1 << 20
	// one row for the coordinator, one per node slot over all its
	// incarnations (each after its own warm-up)
	var rows []procRow
	series := map[string]*soakProc{}
	incarnations := map[string]int{}
	var order []string
	for _, p := range s.procs {
		drop := min(len(p.rss), soakWarmup)
		if p.slot == "coordinator" {
			drop = min(len(p.rss), max(soakWarmup, len(p.rss)/10))
		}
		incarnations[p.slot]++
		acc, ok := series[p.slot]
		if !ok {
			acc = &soakProc{name: p.slot}
			series[p.slot] = acc
			order = append(order, p.slot)
		}
		acc.rss = append(acc.rss, p.rss[drop:]...)
		acc.gor = append(acc.gor, p.gor[drop:]...)
	}
	for _, slot := range order {
		p := series[slot]
		r := procRow{Name: slot, Incarnations: incarnations[slot], Samples: len(p.rss)}
		if len(p.rss) > 0 {
			r.RSSStartMiB, r.RSSEndMiB = p.rss[0]/mib, p.rss[len(p.rss)-1]/mib
			r.GorStart, r.GorEnd = p.gor[0], p.gor[len(p.gor)-1]
		}
		f1, l1, j1, ok1 := soakFlat(p.rss, func(f float64) float64 { return f * (1 + soakRSSGrowth) })
		f2, l2, _, ok2 := soakFlat(p.gor, func(f float64) float64 { return f + soakGoroutineGrowth })
		r.Judged, r.Flat = j1, ok1 && ok2
		r.RSSFirstQMiB, r.RSSLastQMiB, r.GorFirstQ, r.GorLastQ = f1/mib, l1/mib, f2, l2
		if !r.Flat {
			s.failures = append(s.failures, fmt.Sprintf("%s not flat: RSS median %.1f -> %.1f MiB (bound +%.0f%%), goroutines %.0f -> %.0f (bound +%d)",
				slot, r.RSSFirstQMiB, r.RSSLastQMiB, soakRSSGrowth*100, f2, l2, soakGoroutineGrowth))
		}
		rows = append(rows, r)
	}
	var b strings.Builder
	d := s.soakEnd.Sub(s.soakStart).Round(time.Second)
	fmt.Fprintf(&b, "soak: %v, %d streams on %d slots + %d queued, seed %d, 3 nodes (replicas 2), up to %d tokens per request\n",
		d, *soakStreams, soakSlots, soakQueue, *soakSeed, soakMaxTokens)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "requests\t%d\t(%.1f/s)\n", s.requests, float64(s.requests)/d.Seconds())
	keys := slices.Sorted(maps.Keys(s.outcomes))
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, s.outcomes[k])
	}
	fmt.Fprintf(tw, "  greedy ok, equal to single-node\t%d\t\n", s.greedyOK)
	nr := 0
	for _, v := range s.retries {
		nr += v
	}
	fmt.Fprintf(tw, "retried attempts\t%d\t\n", nr)
	for _, k := range slices.Sorted(maps.Keys(s.retries)) {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, s.retries[k])
	}
	fmt.Fprintf(tw, "latency p50 / p99\t%v / %v\t(200 attempts, %d)\n", percentile(s.latency, 0.5).Round(time.Millisecond),
		percentile(s.latency, 0.99).Round(time.Millisecond), len(s.latency))
	fmt.Fprintf(tw, "TTFT p50 / p99\t%v / %v\t(streamed, %d)\n", percentile(s.ttft, 0.5).Round(time.Millisecond),
		percentile(s.ttft, 0.99).Round(time.Millisecond), len(s.ttft))
	nf := 0
	for _, v := range s.faultsBy {
		nf += v
	}
	fmt.Fprintf(tw, "router failovers / RPC errors\t%.0f / %.0f\t(ix_router_*)\n", s.failovers, s.rpcErrors)
	fmt.Fprintf(tw, "faults\t%d\t\n", nf)
	for _, k := range slices.Sorted(maps.Keys(s.faultsBy)) {
		fmt.Fprintf(tw, "  %s\t%d\t\n", k, s.faultsBy[k])
	}
	tw.Flush()
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "process\tprocesses\tsamples\tRSS MiB start→end\tgoroutines start→end\tflat (last vs first quarter median)")
	for _, r := range rows {
		verdict := "not judged (too few samples)"
		if r.Judged && r.Flat {
			verdict = fmt.Sprintf("yes: RSS %.1f→%.1f, goroutines %.0f→%.0f", r.RSSFirstQMiB, r.RSSLastQMiB, r.GorFirstQ, r.GorLastQ)
		} else if r.Judged {
			verdict = fmt.Sprintf("NO: RSS %.1f→%.1f, goroutines %.0f→%.0f", r.RSSFirstQMiB, r.RSSLastQMiB, r.GorFirstQ, r.GorLastQ)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f→%.1f\t%.0f→%.0f\t%s\n", r.Name, r.Incarnations, r.Samples, r.RSSStartMiB, r.RSSEndMiB, r.GorStart, r.GorEnd, verdict)
	}
	tw.Flush()
	fmt.Fprintf(&b, "failures: %d\n", len(s.failures))
	s.t.Logf("fault log:\n%s", strings.Join(s.faults, "\n"))
	s.t.Logf("soak table:\n%s", b.String())
	if *soakOut != "" {
		if err := os.MkdirAll(filepath.Dir(*soakOut), 0o755); err != nil {
			s.t.Error(err)
			return
		}
		if err := os.WriteFile(*soakOut+".txt", []byte(b.String()), 0o644); err != nil {
			s.t.Error(err)
		}
		j, _ := json.MarshalIndent(map[string]any{
			"duration_seconds": d.Seconds(), "streams": *soakStreams, "seed": *soakSeed,
			"requests": s.requests, "outcomes": s.outcomes, "retries": s.retries, "greedy_ok": s.greedyOK,
			"latency_p50_ms": percentile(s.latency, 0.5).Milliseconds(), "latency_p99_ms": percentile(s.latency, 0.99).Milliseconds(),
			"ttft_p50_ms": percentile(s.ttft, 0.5).Milliseconds(), "ttft_p99_ms": percentile(s.ttft, 0.99).Milliseconds(),
			"router_failovers": s.failovers, "router_rpc_errors": s.rpcErrors, "faults": s.faultsBy, "fault_log": s.faults, "processes": rows, "failures": s.failures,
		}, "", "  ")
		if err := os.WriteFile(*soakOut+".json", j, 0o644); err != nil {
			s.t.Error(err)
		}
	}
}
