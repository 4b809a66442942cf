package connlimit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serve runs an HTTP server on loopback behind a limiter of max
// connections: GET /health answers ok, GET /trust marks its connection
// trusted, GET /hold trusts it and blocks until release is closed.
func serve(t *testing.T, max int) (l *Limiter, addr string, release chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = New(max)
	release = make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/trust", func(w http.ResponseWriter, r *http.Request) {
		Trust(r.Context())
		io.WriteString(w, "trusted")
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		Trust(r.Context())
		w.WriteHeader(200)
		http.NewResponseController(w).Flush()
		<-release
	})
	s := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	l.Install(s)
	go s.Serve(l.Listener(ln))
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
		s.Close()
	})
	return l, ln.Addr().String(), release
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends GET path on c (keep-alive) and returns the response status
// and body.
func get(t *testing.T, c net.Conn, br *bufio.Reader, path string) (int, string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if path == "/hold" { // the body never ends: closing it would read it
		return resp.StatusCode, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// closedByServer reports whether the server has closed c (a read gives
// EOF or a reset within the wait).
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// waitOpen waits until l counts want open connections.
func waitOpen(t *testing.T, l *Limiter, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); l.Open() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want %d", l.Open(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitIdle waits until want connections are idle in l's books: a
// client sees the end of a response before the server marks the
// connection idle.
func waitIdle(t *testing.T, l *Limiter, want int) {
	t.Helper()
	idle := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for c := range l.conns {
			if c.state == http.StateIdle {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); idle() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("idle connections %d, want %d", idle(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFloodEvictsUntrustedOldestFirst fills a limit of 4 with a trusted
// idle connection and 3 silent ones, then floods it: the silent ones go
// first (oldest first), the trusted one stays, and /health answers on a
// new connection.
func TestFloodEvictsUntrustedOldestFirst(t *testing.T) {
	l, addr, _ := serve(t, 4)
	trusted := dial(t, addr)
	tbr := bufio.NewReader(trusted)
	if code, body := get(t, trusted, tbr, "/trust"); code != 200 || body != "trusted" {
		t.Fatalf("/trust: %d %q", code, body)
	}
	var silent []net.Conn
	for i := 0; i < 3; i++ {
		silent = append(silent, dial(t, addr))
		waitOpen(t, l, 2+i)
	}
	// A fourth silent connection closes the oldest silent one.
	fourth := dial(t, addr)
	if !closedByServer(silent[0], 10*time.Second) {
		t.Fatal("the oldest silent connection is still open")
	}
	for _, c := range append(silent[1:], fourth) {
		if closedByServer(c, 50*time.Millisecond) {
			t.Fatal("a younger silent connection was closed")
		}
	}
	// A flood of 32 more: the limit holds, the trusted connection stays.
	flood := make([]net.Conn, 32)
	for i := range flood {
		flood[i] = dial(t, addr)
	}
	h := dial(t, addr)
	if code, body := get(t, h, bufio.NewReader(h), "/health"); code != 200 || body != "ok" {
		t.Fatalf("/health during the flood: %d %q", code, body)
	}
	if n := l.Open(); n > 4 {
		t.Fatalf("%d connections open, limit 4", n)
	}
	if code, _ := get(t, trusted, tbr, "/health"); code != 200 {
		t.Fatalf("the trusted connection after the flood: %d", code)
	}
	// Accepted in dial order, each beyond the limit closed the oldest
	// silent one: all but the last two of the flood are gone.
	gone := append(append(silent, fourth), flood[:len(flood)-2]...)
	for i, c := range gone {
		if !closedByServer(c, 10*time.Second) {
			t.Fatalf("silent connection %d of %d still open", i, len(gone))
		}
	}
	if ev, _ := l.Shed(); ev != uint64(len(gone)) {
		t.Fatalf("evicted %d, want %d", ev, len(gone))
	}
}

// TestRefusedWhenAllTrustedActive: when every open connection is a
// trusted running request, a new connection is refused with 503 and the
// running requests are untouched.
func TestRefusedWhenAllTrustedActive(t *testing.T) {
	l, addr, release := serve(t, 2)
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c := dial(t, addr)
		if code, _ := get(t, c, bufio.NewReader(c), "/hold"); code != 200 {
			t.Fatalf("/hold: %d", code)
		}
		held = append(held, c)
	}
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(c) // the refusal, then EOF (or a reset after it)
	if !strings.HasPrefix(string(b), "HTTP/1.1 503 ") || !strings.Contains(string(b), "Retry-After: 1") {
		t.Fatalf("refused connection got %q", b)
	}
	if _, refused := l.Shed(); refused != 1 {
		t.Fatalf("refused %d, want 1", refused)
	}
	for _, h := range held {
		if closedByServer(h, 50*time.Millisecond) {
			t.Fatal("a trusted running request was closed")
		}
	}
	close(release)
	waitOpen(t, l, 2) // both still open
	waitIdle(t, l, 2) // and back to idle (the server marks them so after the response)
	// Idle trusted connections make room again.
	h := dial(t, addr)
	if code, _ := get(t, h, bufio.NewReader(h), "/health"); code != 200 {
		t.Fatalf("/health after the holds ended: %d", code)
	}
}

func TestRank(t *testing.T) {
	for _, c := range []struct {
		trusted bool
		state   http.ConnState
		want    int
	}{
		{false, http.StateIdle, 0}, {false, http.StateNew, 1}, {false, http.StateActive, 2},
		{true, http.StateIdle, 3}, {true, http.StateActive, -1}, {false, http.StateHijacked, -1},
	} {
		if got := rank(&Conn{trusted: c.trusted, state: c.state}); got != c.want {
			t.Errorf("rank(trusted %v, %v) = %d, want %d", c.trusted, c.state, got, c.want)
		}
	}
}
