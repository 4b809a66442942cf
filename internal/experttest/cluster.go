package experttest

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/expertnode"
)

// Node is an expert node served in-process on a loopback port.
type Node struct {
	Addr   string
	Server *expertnode.Server
	cancel context.CancelFunc
	done   chan error
}

// StartNode serves cfg on 127.0.0.1:0 until the test ends (or Stop).
func StartNode(t testing.TB, cfg expertnode.Config) *Node {
	t.Helper()
	s, err := expertnode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{Addr: lis.Addr().String(), Server: s, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- s.Serve(ctx, lis) }()
	t.Cleanup(func() { n.Stop() })
	return n
}

// Stop shuts the node down gracefully and waits for Serve to return.
func (n *Node) Stop() error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	n.cancel = nil
	return <-n.done
}

// Proxy forwards TCP connections to a target until Kill cuts them all:
// fault injection between a router and a node.
type Proxy struct {
	Addr   string
	target string
	lis    net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
	// stalled, while not nil, holds every byte until it is closed
	// (Resume): the node looks hung (SIGSTOP) to the router.
	stalled chan struct{}
}

// StartProxy listens on 127.0.0.1:0 and forwards to target.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return StartProxyAt(t, "127.0.0.1:0", target)
}

// StartProxyAt listens on addr and forwards to target: given a killed
// proxy's address, the node comes back where it was.
func StartProxyAt(t testing.TB, addr, target string) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: lis.Addr().String(), target: target, lis: lis}
	go p.accept()
	t.Cleanup(p.Kill)
	return p
}

func (p *Proxy) accept() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.killed {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { p.copy(u, c); u.Close() }()
		go func() { p.copy(c, u); c.Close() }()
	}
}

// copy forwards src to dst, holding the bytes while the proxy is stalled.
func (p *Proxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.stalled
			p.mu.Unlock()
			if gate != nil {
				<-gate
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall holds every byte in both directions from now on, as a SIGSTOPped
// node: connections stay open, calls and health checks get no answer.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// Resume ends a Stall (SIGCONT): the held bytes flow on.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

// Kill closes the listener and every connection, as if the node's host
// vanished: calls in flight fail and new connections are refused.
func (p *Proxy) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed {
		return
	}
	p.killed = true
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
	p.lis.Close()
	for _, c := range p.conns {
		c.Close()
	}
}
