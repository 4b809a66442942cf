package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
)

var netnsMode = flag.String("netns", "auto", `where cluster test processes run: "on" (each in its own network namespace; needs root and iproute2), "off" (loopback ports) or "auto" (namespaces when possible)`)

// testNet is where a cluster test's processes run: each in its own
// network namespace, the namespaces joined by a bridge in one more
// namespace (netns mode: as root, with iproute2), or all on loopback
// ports. Nothing is created outside the test's own namespaces. Close (a
// test cleanup) deletes every namespace made, even when the test fails.
type testNet struct {
	// Mode is "netns" or "loopback".
	Mode string
	// Why says why loopback was chosen.
	Why string

	prefix  string
	hub     string
	mu      sync.Mutex
	members int
	made    []string // namespaces to delete
}

// netSubnet is the private subnet inside the test namespaces; member i
// gets netSubnet.(i+1).
const netSubnet = "10.77.0"

// newTestNet sets up the network the -netns flag asks for and registers
// its cleanup.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	n := &testNet{Mode: "loopback"}
	switch *netnsMode {
	case "off":
		n.Why = "-netns off"
	case "on", "auto":
		err := n.setup()
		if err == nil {
			n.Mode = "netns"
			break
		}
		n.close()
		if *netnsMode == "on" {
			t.Fatalf("-netns on: %v", err)
		}
		n.Why = err.Error()
	default:
		t.Fatalf("-netns %q: want on, off or auto", *netnsMode)
	}
	t.Cleanup(n.close)
	if n.Mode == "netns" {
		t.Logf("network: each process in its own network namespace (%s-*), bridged on %s.0/24", n.prefix, netSubnet)
	} else {
		t.Logf("network: loopback ports (%s)", n.Why)
	}
	return n
}

// ipCmd runs ip with args.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %v: %v: %s", args, err, out)
	}
	return nil
}

func (n *testNet) setup() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("network namespaces need Linux")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("no ip command (iproute2): %v", err)
	}
	removeStaleNetns()
	n.prefix = fmt.Sprintf("ixt%d", os.Getpid())
	n.hub = n.prefix + "-hub"
	if err := n.addNetns(n.hub); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-n", n.hub, "link", "add", "br0", "type", "bridge", "forward_delay", "0"},
		{"-n", n.hub, "link", "set", "br0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return err
		}
	}
	return nil
}

func (n *testNet) addNetns(name string) error {
	if err := ipCmd("netns", "add", name); err != nil {
		return err
	}
	n.made = append(n.made, name)
	return ipCmd("-n", name, "link", "set", "lo", "up")
}

// close deletes the namespaces (which removes their links).
func (n *testNet) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.made) - 1; i >= 0; i-- {
		ipCmd("netns", "delete", n.made[i])
	}
	n.made = nil
}

// netMember is one process's place in the network.
type netMember struct {
	net *testNet
	// IP is the address others reach it at.
	IP string
	ns string // "" on loopback
}

// member makes a place for one process: a namespace wired to the bridge
// with the next address, or loopback.
func (n *testNet) member(t *testing.T, name string) *netMember {
	t.Helper()
	if n.Mode != "netns" {
		return &netMember{net: n, IP: "127.0.0.1"}
	}
	n.mu.Lock()
	n.members++
	i := n.members
	n.mu.Unlock()
	ns := fmt.Sprintf("%s-%s", n.prefix, name)
	ip := fmt.Sprintf("%s.%d", netSubnet, i)
	veth := fmt.Sprintf("v%d", i)
	if err := n.addNetns(ns); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-n", n.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", n.hub, "link", "set", veth, "master", "br0", "up"},
		{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	return &netMember{net: n, IP: ip, ns: ns}
}

// command returns bin with args, to run in the member's namespace.
func (m *netMember) command(bin string, args ...string) *exec.Cmd {
	if m.ns == "" {
		return exec.Command(bin, args...)
	}
	// ip netns exec execs bin in place: the process is bin's.
	return exec.Command("ip", append([]string{"netns", "exec", m.ns, bin}, args...)...)
}

// forward returns an address in the test's own network that reaches addr
// in the member's (addr itself on loopback): a TCP relay whose outgoing
// connections are made from inside the namespace.
func (m *netMember) forward(t *testing.T, addr string) string {
	t.Helper()
	if m.ns == "" {
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	path := "/var/run/netns/" + m.ns
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := dialInNetns(path, addr)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(u, c); done <- struct{}{} }()
				go func() { io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}
