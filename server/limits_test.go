package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inference-x/inference-x/server/scheduler"
)

// rawPost opens a connection to ts and sends the headers of a POST with
// Content-Length n, plus the first bytes of its body.
func rawPost(t *testing.T, ts *testServer, path, auth string, n int, first string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	h := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	if auth != "" {
		h += "Authorization: Bearer " + auth + "\r\n"
	}
	h += "Content-Length: " + strconv.Itoa(n) + "\r\n\r\n" + first
	if _, err := io.WriteString(c, h); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readToEOF reads c's response, then checks the server closed c.
func readToEOF(t *testing.T, c net.Conn, br *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("data after the response")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept the connection open")
	}
	return resp
}

// TestBodyTimeout: a body trickling in (a byte every 20 ms, each read
// well inside the timeout) is cut when the whole body has not arrived
// within Config.Timeout: 408 and the connection closed.
func TestBodyTimeout(t *testing.T) {
	ts := newTestServer(t, serverOpts{timeout: 200 * time.Millisecond})
	c, br := rawPost(t, ts, "/v1/completions", "", 1000, `{"prompt":`)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if _, err := io.WriteString(c, " "); err != nil {
					return
				}
			}
		}
	}()
	resp := readToEOF(t, c, br)
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("status %d, Connection: close %v; want 408, close", resp.StatusCode, resp.Close)
	}
}

// TestUnauthorizedClosesConnection: with an API key, a request without
// it gets 401 at once, its body unread, and its connection closed.
func TestUnauthorizedClosesConnection(t *testing.T) {
	ts := newTestServer(t, serverOpts{apiKey: "k"})
	c, br := rawPost(t, ts, "/v1/completions", "wrong", 1<<20, `{"prompt":`)
	resp := readToEOF(t, c, br)
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Fatalf("status %d, Connection: close %v; want 401, close", resp.StatusCode, resp.Close)
	}
}

// TestTimeoutSparesLongRequests: a streaming request waiting in the
// queue for many timeouts, then generating, completes: the body deadline
// ends with the body (else the connection's background read would time
// out and cancel the request), and there is no deadline on the stream.
func TestTimeoutSparesLongRequests(t *testing.T) {
	const timeout = 100 * time.Millisecond
	ts := newTestServer(t, serverOpts{noRun: true, timeout: timeout,
		sched: scheduler.Config{Slots: 1, Ctx: 256, MaxBatch: 16, Queue: 4, Threads: 1}})
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post(ts.URL+"/v1/completions", "application/json",
			strings.NewReader(`{"prompt":"Once","max_tokens":16,"stream":true,"temperature":0}`))
		got <- result{resp, err}
	}()
	waitFor(t, "the request to queue", func() bool { return ts.sched.InFlight() == 1 })
	time.Sleep(5 * timeout) // the body deadline, had it stayed, has passed
	if ts.sched.InFlight() != 1 {
		t.Fatal("the queued request was cancelled")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ts.sched.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	resp := r.resp
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	events, ok := sse(t, resp)
	if !ok || len(events) < 2 {
		t.Fatalf("stream ended early: %d events, [DONE] %v", len(events), ok)
	}
}

// TestWriteStallClosesConnection: a response write a client does not
// read for Config.Timeout fails (and the connection closes) instead of
// blocking the handler forever.
func TestWriteStallClosesConnection(t *testing.T) {
	ts := newTestServer(t, serverOpts{timeout: 200 * time.Millisecond})
	errc := make(chan error, 1)
	chunk := make([]byte, 64<<10)
	hs := httptest.NewServer(ts.srv.endpoint("stall", http.MethodGet, func(w http.ResponseWriter, r *http.Request) error {
		for range 1024 { // 64 MiB: more than any socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				errc <- err
				return nil
			}
		}
		errc <- nil
		return nil
	}))
	defer hs.Close()
	c, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write error %v, want a deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler is still writing to a client that does not read")
	}
}
