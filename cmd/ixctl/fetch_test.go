package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/shard"
)

// splitDir synthesises a small MoE model and splits it for nodes a and b
// with ixctl split; it returns the output directory and its manifest.
func splitDir(t *testing.T) (string, shard.Manifest) {
	t.Helper()
	dir := t.TempDir()
	model := filepath.Join(dir, "m.gguf")
	if _, errs, code := runIxctl(t, "", "synth", "--arch", "qwen3moe", "--experts", "8", "--type", "Q8_0", "--out", model, "--no-progress"); code != 0 {
		t.Fatalf("synth: %s", errs)
	}
	plan := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(plan, []byte(`{"nodes":[{"name":"a","experts":"0-4"},{"name":"b","experts":"3-7"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "shards")
	if _, errs, code := runIxctl(t, "", "split", model, "--plan", plan, "--out", out, "--no-progress"); code != 0 {
		t.Fatalf("split: %s", errs)
	}
	b, err := os.ReadFile(filepath.Join(out, shard.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var man shard.Manifest
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	return out, man
}

// fileServer serves dir over HTTP on loopback and records the requests
// (path and Range header). fail, when set, may answer a request instead.
type fileServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []string
	fail func(w http.ResponseWriter, r *http.Request) bool
}

func serveDir(t *testing.T, dir string) *fileServer {
	fs := &fileServer{}
	files := http.FileServer(http.Dir(dir))
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.reqs = append(fs.reqs, strings.TrimSpace(r.URL.Path+" "+r.Header.Get("Range")))
		fail := fs.fail
		fs.mu.Unlock()
		if fail != nil && fail(w, r) {
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fileServer) requests() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := fs.reqs
	fs.reqs = nil
	return out
}

func fetchJSON(t *testing.T, args ...string) []FetchResult {
	t.Helper()
	out, errs, code := runIxctl(t, "", append([]string{"fetch", "-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("fetch %v: exit %d: %s", args, code, errs)
	}
	var rs []FetchResult
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	return rs
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s differs from %s", b, a)
	}
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists (%v)", path, err)
	}
}

// TestFetch downloads a real split over HTTP, keeps verified files on a
// second run, re-downloads a file that differs, and resumes a partial file
// with a range request.
func TestFetch(t *testing.T) {
	src, man := splitDir(t)
	// Served under a path: the base URL is a directory, with or without
	// its trailing slash.
	srv := serveDir(t, filepath.Dir(src))
	base := srv.URL + "/shards"
	dst := filepath.Join(t.TempDir(), "models")

	rs := fetchJSON(t, "--base-url", base, "--dir", dst, "coordinator.gguf", "a.gguf")
	if len(rs) != 2 || rs[0].Action != "downloaded" || rs[1].Action != "downloaded" ||
		rs[0].Bytes != man.Coordinator.Bytes || rs[1].SHA256 != man.Nodes[0].SHA256 {
		t.Fatalf("results %+v", rs)
	}
	if got := srv.requests(); strings.Join(got, ",") != "/shards/manifest.json,/shards/coordinator.gguf,/shards/a.gguf" {
		t.Fatalf("requests %v", got)
	}
	for _, f := range []string{"coordinator.gguf", "a.gguf", "manifest.json"} {
		sameFile(t, filepath.Join(src, f), filepath.Join(dst, f))
		noFile(t, filepath.Join(dst, f+".part"))
	}
	noFile(t, filepath.Join(dst, "b.gguf"))

	// In place and verified: only the manifest is fetched.
	rs = fetchJSON(t, "--base-url", base+"/", "--dir", dst, "coordinator.gguf", "a.gguf")
	if rs[0].Action != "verified" || rs[1].Action != "verified" {
		t.Fatalf("second run %+v", rs)
	}
	if got := srv.requests(); len(got) != 1 {
		t.Fatalf("second run requests %v", got)
	}

	// Same size, one byte changed: --verify size keeps it, sha256 (the
	// default) downloads it again.
	a := filepath.Join(dst, "a.gguf")
	b, _ := os.ReadFile(a)
	b[len(b)/2] ^= 0xff
	os.WriteFile(a, b, 0o644)
	if rs := fetchJSON(t, "--base-url", base, "--dir", dst, "--verify", "size", "a.gguf"); rs[0].Action != "verified" {
		t.Fatalf("--verify size: %+v", rs)
	}
	_, errs, code := runIxctl(t, "", "fetch", "--base-url", base, "--dir", dst, "a.gguf")
	if code != 0 || !strings.Contains(errs, "downloading it again") {
		t.Fatalf("changed file: exit %d: %s", code, errs)
	}
	sameFile(t, filepath.Join(src, "a.gguf"), a)
	srv.requests()

	// A partial file from an interrupted run is resumed from its end.
	full, _ := os.ReadFile(filepath.Join(src, "b.gguf"))
	half := len(full) / 2
	os.WriteFile(filepath.Join(dst, "b.gguf.part"), full[:half], 0o644)
	if rs := fetchJSON(t, "--base-url", base, "--dir", dst, "b.gguf"); rs[0].Action != "downloaded" {
		t.Fatalf("resume: %+v", rs)
	}
	if got := srv.requests(); len(got) != 2 || got[1] != "/shards/b.gguf bytes="+itoa(half)+"-" {
		t.Fatalf("resume requests %v", got)
	}
	sameFile(t, filepath.Join(src, "b.gguf"), filepath.Join(dst, "b.gguf"))
	noFile(t, filepath.Join(dst, "b.gguf.part"))
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestFetchCorrupt: a served file whose bytes differ from the manifest's
// SHA-256 fails naming both digests and leaves nothing in place, not even
// the partial file.
func TestFetchCorrupt(t *testing.T) {
	src, man := splitDir(t)
	b, _ := os.ReadFile(filepath.Join(src, "b.gguf"))
	b[len(b)-1] ^= 0x01
	os.WriteFile(filepath.Join(src, "b.gguf"), b, 0o644)
	srv := serveDir(t, src)
	dst := t.TempDir()
	_, errs, code := runIxctl(t, "", "fetch", "--base-url", srv.URL, "--dir", dst, "--retry-wait", "1ms", "b.gguf")
	want := man.Nodes[1].SHA256
	if code == 0 || !strings.Contains(errs, "verification failed") || !strings.Contains(errs, "says "+want) || !strings.Contains(errs, "SHA-256 ") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	noFile(t, filepath.Join(dst, "b.gguf"))
	noFile(t, filepath.Join(dst, "b.gguf.part"))
	if got := srv.requests(); len(got) != 2 {
		t.Fatalf("a mismatch is not retried: requests %v", got)
	}

	// Truncated on the server: the size differs from the manifest's.
	os.WriteFile(filepath.Join(src, "b.gguf"), b[:len(b)-10], 0o644)
	_, errs, code = runIxctl(t, "", "fetch", "--base-url", srv.URL, "--dir", dst, "b.gguf")
	if code == 0 || !strings.Contains(errs, "verification failed") || !strings.Contains(errs, "says the file has") {
		t.Fatalf("truncated: exit %d: %s", code, errs)
	}
	noFile(t, filepath.Join(dst, "b.gguf"))
	noFile(t, filepath.Join(dst, "b.gguf.part"))
}

// TestFetchErrors: HTTP errors, retries, files the manifest does not
// list, and the no-URL mode.
func TestFetchErrors(t *testing.T) {
	src, _ := splitDir(t)
	srv := serveDir(t, src)
	dst := t.TempDir()

	// Not in the manifest: the error lists what is.
	_, errs, code := runIxctl(t, "", "fetch", "--base-url", srv.URL, "--dir", dst, "ix-expertnode-7.gguf")
	if code == 0 || !strings.Contains(errs, "ix-expertnode-7.gguf: not in manifest.json (it lists coordinator.gguf, a.gguf, b.gguf)") {
		t.Fatalf("unknown file: exit %d: %s", code, errs)
	}

	// 404 is not retried and names the status and URL.
	os.Rename(filepath.Join(src, "a.gguf"), filepath.Join(src, "a.moved"))
	srv.requests()
	_, errs, code = runIxctl(t, "", "fetch", "--base-url", srv.URL, "--dir", dst, "--retry-wait", "1ms", "a.gguf")
	if code == 0 || !strings.Contains(errs, "GET "+srv.URL+"/a.gguf: 404 Not Found") {
		t.Fatalf("404: exit %d: %s", code, errs)
	}
	if got := srv.requests(); len(got) != 2 {
		t.Fatalf("404 retried: %v", got)
	}
	os.Rename(filepath.Join(src, "a.moved"), filepath.Join(src, "a.gguf"))

	// Two 503s, then the file: retried and downloaded.
	var mu sync.Mutex
	fails := 2
	srv.mu.Lock()
	srv.fail = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/a.gguf" && fails > 0 {
			fails--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	srv.mu.Unlock()
	_, errs, code = runIxctl(t, "", "fetch", "--base-url", srv.URL, "--dir", dst, "--retry-wait", "1ms", "a.gguf")
	if code != 0 || strings.Count(errs, "503 Service Unavailable: retrying") != 2 {
		t.Fatalf("503s: exit %d: %s", code, errs)
	}
	sameFile(t, filepath.Join(src, "a.gguf"), filepath.Join(dst, "a.gguf"))

	// Always 503: gives up after --retries.
	srv.mu.Lock()
	srv.fail = func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	}
	srv.mu.Unlock()
	_, errs, code = runIxctl(t, "", "fetch", "--base-url", srv.URL, "--dir", t.TempDir(), "--retries", "2", "--retry-wait", "1ms", "a.gguf")
	if code == 0 || !strings.Contains(errs, "503 Service Unavailable (gave up after 2 retries)") {
		t.Fatalf("always 503: exit %d: %s", code, errs)
	}

	// No --base-url: checks DIR against its manifest.json.
	if rs := fetchJSON(t, "--dir", dst, "a.gguf"); rs[0].Action != "verified" {
		t.Fatalf("no URL: %+v", rs)
	}
	_, errs, code = runIxctl(t, "", "fetch", "--dir", dst, "b.gguf")
	if code == 0 || !strings.Contains(errs, "b.gguf is missing and --base-url is empty") {
		t.Fatalf("no URL, missing: exit %d: %s", code, errs)
	}
	bare := t.TempDir()
	os.WriteFile(filepath.Join(bare, "model.gguf"), []byte("GGUF"), 0o644)
	if rs := fetchJSON(t, "--dir", bare, "model.gguf"); rs[0].Action != "present" {
		t.Fatalf("no URL, no manifest: %+v", rs)
	}

	// Usage errors name the problem.
	for args, want := range map[string]string{
		"--base-url ftp://x a.gguf":         "want http://HOST/PATH",
		"--dir " + dst + " ../a.gguf":       "not a file name",
		"--verify md5 a.gguf":               "--verify \"md5\"",
		"--base-url http://x manifest.json": "always fetched",
	} {
		_, errs, code := runIxctl(t, "", append([]string{"fetch"}, strings.Fields(args)...)...)
		if code == 0 || !strings.Contains(errs, want) {
			t.Errorf("fetch %s: exit %d: %s (want %q)", args, code, errs, want)
		}
	}
}

// TestFetchStall: a server that stops sending mid-body is dropped after
// --timeout and the partial file is kept for the next try.
func TestFetchStall(t *testing.T) {
	src, man := splitDir(t)
	release := make(chan struct{})
	srv := serveDir(t, src)
	srv.fail = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/a.gguf" {
			return false
		}
		w.Header().Set("Content-Length", itoa(int(man.Nodes[0].Bytes)))
		w.WriteHeader(http.StatusOK)
		b, _ := os.ReadFile(filepath.Join(src, "a.gguf"))
		w.Write(b[:100])
		w.(http.Flusher).Flush()
		<-release
		return true
	}
	defer close(release)
	dst := t.TempDir()
	_, errs, code := runIxctl(t, "", "fetch", "--base-url", srv.URL, "--dir", dst, "--timeout", "300ms", "--retries", "0", "a.gguf")
	if code == 0 || !strings.Contains(errs, "after 100 of") || !strings.Contains(errs, "no data for 300ms") {
		t.Fatalf("stall: exit %d: %s", code, errs)
	}
	noFile(t, filepath.Join(dst, "a.gguf"))
	if st, err := os.Stat(filepath.Join(dst, "a.gguf.part")); err != nil || st.Size() != 100 {
		t.Fatalf("partial file kept for resuming: %v %v", st, err)
	}
}
