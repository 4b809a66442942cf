package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inference-x/inference-x/internal/testenv"
)

var binDir = flag.String("bin", "", "directory holding built coordinator, expertnode and ixctl binaries (default: build them)")

var (
	buildOnce sync.Mutex
	builtDir  string
)

// binaries returns the directory of the coordinator, expertnode and ixctl
// binaries, building them once per test binary when -bin is not given.
func binaries(t *testing.T) string {
	t.Helper()
	if *binDir != "" {
		return *binDir
	}
	buildOnce.Lock()
	defer buildOnce.Unlock()
	if builtDir != "" {
		return builtDir
	}
	dir, err := os.MkdirTemp("", "ix-bin-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "github.com/inference-x/inference-x/cmd/coordinator",
		"github.com/inference-x/inference-x/cmd/expertnode", "github.com/inference-x/inference-x/cmd/ixctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("go build: %v\n%s", err, out)
	}
	builtDir = dir
	return dir
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

var servingAddr = regexp.MustCompile(`msg="expert node serving" addr=(\S+)`)

// startNode runs an expertnode process on a free loopback port and returns
// it with its address once it serves.
func startNode(t *testing.T, bin, model, experts string, extra ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	args := append([]string{"-m", model, "--listen", "127.0.0.1:0", "--experts", experts, "--threads", "1", "--health-listen", "off"}, extra...)
	cmd := exec.Command(filepath.Join(bin, "expertnode"), args...)
	logs := newSyncBuffer()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingAddr.FindStringSubmatch(logs.String()); m != nil {
			return cmd, m[1], logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("expertnode did not start serving:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterProcesses runs a coordinator with no local experts against
// three expert nodes (replication 2) as processes, SIGKILLs one node while
// tokens stream, and checks that generation completes with the tokens of
// single-node mode and that the router logged the failover. `make
// cluster-test` runs it.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	model := testenv.Shared(t, "testdata/models/deepseek2-384.Q8_0.gguf")
	bin := binaries(t)
	const n = 1500
	args := []string{"run", "-m", model, "--prompt-tokens", "688,12,400,33,71", "-n", fmt.Sprint(n),
		"--temp", "0", "--ctx", "2048", "-t", "1"}

	ref := exec.Command(filepath.Join(bin, "coordinator"), args...)
	var refErr bytes.Buffer
	ref.Stderr = &refErr
	want, err := ref.Output()
	if err != nil {
		t.Fatalf("single-node run: %v\n%s", err, refErr.String())
	}

	// experts in thirds; node i holds thirds i and i+1
	specs := []string{"0-255", "128-383", "0-127,256-383"}
	var nodes []*exec.Cmd
	var addrs []string
	for _, s := range specs {
		cmd, addr, _ := startNode(t, bin, model, s)
		nodes, addrs = append(nodes, cmd), append(addrs, addr)
	}
	coord := exec.Command(filepath.Join(bin, "coordinator"), append(args, "--nodes", strings.Join(addrs, ","), "--local-experts=false")...)
	logs := newSyncBuffer()
	coord.Stderr = logs
	stdout, err := coord.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	r := bufio.NewReader(stdout)
	killed := false
	buf := make([]byte, 256)
	for {
		k, err := r.Read(buf)
		got.Write(buf[:k])
		if !killed && got.Len() >= 64 {
			// a few tokens are out: kill a node without warning
			if err := nodes[1].Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
			t.Logf("killed node %s after %d bytes of output", addrs[1], got.Len())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := coord.Wait(); err != nil {
		t.Fatalf("coordinator: %v\n%s", err, logs.String())
	}
	if !killed {
		t.Fatal("generation ended before a node could be killed")
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("cluster output differs from single-node output:\ncluster: %.300q\nsingle:  %.300q", got.String(), want)
	}
	stderr := logs.String()
	if !strings.Contains(stderr, "failing over") || !strings.Contains(stderr, addrs[1]) {
		t.Fatalf("the router did not log the failover of %s:\n%s", addrs[1], stderr)
	}
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, "failing over") {
			t.Logf("router: %s", line)
			break
		}
	}
	if tail := lastLines(stderr, 2); tail != "" {
		t.Logf("coordinator: %s", tail)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
