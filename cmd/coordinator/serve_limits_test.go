package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dialRaw opens a loopback connection to serve's base URL and sends s.
func dialRaw(t *testing.T, base, s string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if s != "" {
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// health GETs /health on a new connection and returns its status.
func health(t *testing.T, base string) int {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(base + "/health")
	if err != nil {
		t.Fatalf("/health: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// serverClosed reads c until the server closes it (within 10 s) and
// returns what it sent.
func serverClosed(t *testing.T, c net.Conn, what string) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: the server kept the connection open", what)
	}
	return string(b)
}

// TestServeSlowloris: with short --header-timeout and --timeout, slow
// clients (headers never finished, bodies stalled or trickling, with and
// without the key) do not stop /health, and each is closed by the server:
// the unauthenticated at once (401), stalled bodies with 408.
func TestServeSlowloris(t *testing.T) {
	base, _ := startServe(t, "-m", stories(t), "--http", "127.0.0.1:0", "--api-key", "k", "--slots", "1", "--ctx", "128", "-t", "1",
		"--header-timeout", "300ms", "--timeout", "300ms", "--max-connections", "64")
	post := func(auth string) string {
		h := "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
		if auth != "" {
			h += "Authorization: Bearer " + auth + "\r\n"
		}
		return h + "\r\n" + `{"prompt":"`
	}
	var partial, stalled, unauth []net.Conn
	for range 4 {
		partial = append(partial, dialRaw(t, base, "GET /health HTTP/1.1\r\nHost: x\r\n"))
		stalled = append(stalled, dialRaw(t, base, post("k")))
		unauth = append(unauth, dialRaw(t, base, post("")))
	}
	trickle := dialRaw(t, base, post("k"))
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a byte each 30 ms: every read is quick, the body never ends
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
				if _, err := io.WriteString(trickle, "a"); err != nil {
					return
				}
			}
		}
	}()
	if code := health(t, base); code != 200 {
		t.Fatalf("/health among slow clients: %d", code)
	}
	for i, c := range partial {
		if got := serverClosed(t, c, "partial headers"); got != "" {
			t.Errorf("partial headers %d got %q", i, got)
		}
	}
	for _, c := range unauth {
		if got := serverClosed(t, c, "unauthenticated body"); !strings.HasPrefix(got, "HTTP/1.1 401 ") || !strings.Contains(got, "Connection: close") {
			t.Errorf("unauthenticated stalled body got %q", got)
		}
	}
	for _, c := range append(stalled, trickle) {
		if got := serverClosed(t, c, "stalled body"); !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, "request_timeout") {
			t.Errorf("stalled body got %q", got)
		}
	}
	if code := health(t, base); code != 200 {
		t.Fatalf("/health after the slow clients: %d", code)
	}
}

// TestServeConnectionFlood: 64 silent connections against
// --max-connections 16 leave /health answering, at most 16 connections
// open (ix_server_open_connections), the oldest silent ones closed by
// the server, and an authenticated keep-alive connection untouched.
func TestServeConnectionFlood(t *testing.T) {
	base, _ := startServe(t, "-m", stories(t), "--http", "127.0.0.1:0", "--api-key", "k", "--slots", "1", "--ctx", "128", "-t", "1",
		"--max-connections", "16")
	trusted := dialRaw(t, base, "")
	tbr := bufio.NewReader(trusted)
	get := func(path string) (int, string) {
		t.Helper()
		trusted.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(trusted, "GET "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n")
		resp, err := http.ReadResponse(tbr, nil)
		if err != nil {
			t.Fatalf("GET %s on the authenticated connection: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/v1/models"); code != 200 {
		t.Fatalf("/v1/models: %d", code)
	}
	flood := make([]net.Conn, 64)
	for i := range flood {
		flood[i] = dialRaw(t, base, "")
	}
	if code := health(t, base); code != 200 {
		t.Fatalf("/health during the flood: %d", code)
	}
	// At most 15 flood connections stay beside the authenticated one; the
	// oldest 48 are certainly gone.
	for i, c := range flood[:48] {
		if got := serverClosed(t, c, "flood connection "+strconv.Itoa(i)); got != "" {
			t.Errorf("flood connection %d got %q", i, got)
		}
	}
	code, metrics := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics on the authenticated connection after the flood: %d", code)
	}
	m := regexp.MustCompile(`(?m)^ix_server_open_connections (\d+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no ix_server_open_connections in /metrics")
	}
	if n, _ := strconv.Atoi(m[1]); n > 16 || n < 1 {
		t.Errorf("ix_server_open_connections %d, limit 16", n)
	}
	m = regexp.MustCompile(`(?m)^ix_server_connections_shed_total\{reason="evicted"\} (\d+)$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no evicted count in /metrics")
	}
	if n, _ := strconv.Atoi(m[1]); n < 48 {
		t.Errorf("evicted %d connections, want >= 48", n)
	}
}

// TestServeTimeoutFlag: --timeout takes llama-server's seconds or a
// duration, and -to is its short spelling.
func TestServeTimeoutFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"60": time.Minute, "0": 0, "250ms": 250 * time.Millisecond, "2m": 2 * time.Minute} {
		var d secondsFlag
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("--timeout %s = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	var d secondsFlag
	if err := d.Set("soon"); err == nil {
		t.Error("--timeout soon accepted")
	}
	code, _, errs := run(t, "serve", "-m", stories(t), "-to", "-1")
	if code != 2 || !strings.Contains(errs, "--timeout -1s must be >= 0") {
		t.Errorf("-to -1: exit %d, %s", code, errs)
	}
	code, _, errs = run(t, "serve", "-m", stories(t), "--max-connections", "0")
	if code != 2 || !strings.Contains(errs, "--max-connections 0 must be >= 1") {
		t.Errorf("--max-connections 0: exit %d, %s", code, errs)
	}
}
