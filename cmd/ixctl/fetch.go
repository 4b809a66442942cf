package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/shard"
)

// ErrVerify is wrapped when a file's size or SHA-256 differs from the
// manifest's.
var ErrVerify = errors.New("verification failed")

// Verify modes of `ixctl fetch`: how a file already in place is checked.
const (
	VerifySHA256 = "sha256"
	VerifySize   = "size"
)

// maxManifest bounds the manifest download: it lists files, not data.
const maxManifest = 16 << 20

// FetchOptions are the inputs of `ixctl fetch`.
type FetchOptions struct {
	BaseURL    string
	Dir        string
	Files      []string
	Verify     string
	Timeout    time.Duration
	Retries    int
	RetryWait  time.Duration
	NoProgress bool
	Output     cli.Output

	base *url.URL
}

// FetchResult is what fetch did with one file.
type FetchResult struct {
	File   string `json:"file"`
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256,omitempty"`
	// Action is "downloaded", "verified" (already in place, checked
	// against the manifest) or "present" (in place, no manifest to check).
	Action  string  `json:"action"`
	Seconds float64 `json:"seconds"`
}

func newFetchCmd(s cli.Streams) *cobra.Command {
	o := &FetchOptions{}
	cmd := &cobra.Command{
		Use:   "fetch FILE... --base-url URL --dir DIR",
		Short: "Download ixctl split files and verify their SHA-256 against manifest.json",
		Long: `fetch downloads BASE-URL/manifest.json (written by ixctl split) and then each
FILE named on the command line (coordinator.gguf, NODE.gguf) into DIR. Each
file is streamed into DIR/FILE.part while its SHA-256 is computed, compared
with the manifest's size and digest, synced and only then renamed to
DIR/FILE: a file in place is always a verified one. A mismatch removes the
partial file and fails naming the expected and the received digest.

A FILE already in DIR with the manifest's size and SHA-256 (--verify sha256,
the default) or size (--verify size: faster for files of hundreds of GB) is
kept. A DIR/FILE.part left by an interrupted run is resumed with an HTTP
range request. Failed requests (network errors, 5xx, 429) are retried
--retries times, waiting --retry-wait and doubling; a connection that sends
nothing for --timeout is dropped and retried.

With an empty --base-url nothing is downloaded: fetch checks that each FILE
is in DIR (against DIR/manifest.json when there is one) and fails naming the
missing ones. This is the model-download init container of the Kubernetes
manifests (deploy/k8s): the image has no shell, no curl.`,
		Example: `  ixctl fetch --base-url http://models.example/kimi-k2 --dir /models coordinator.gguf
  ixctl fetch --base-url "$MODEL_URL" --dir /models "$POD_NAME.gguf"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Files = args
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context(), s)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.BaseURL, "base-url", "", "URL of the directory ixctl split wrote (holding manifest.json); empty: only check DIR")
	f.StringVar(&o.Dir, "dir", ".", "directory to write the files into")
	f.StringVar(&o.Verify, "verify", VerifySHA256, "how a file already in DIR is checked: sha256 or size")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "connect, response and idle-read timeout of each request")
	f.IntVar(&o.Retries, "retries", 5, "retries of a failed request")
	f.DurationVar(&o.RetryWait, "retry-wait", time.Second, "wait before the first retry (doubling, at most 1m)")
	f.BoolVar(&o.NoProgress, "no-progress", false, "no progress on stderr (drawn only when stderr is a terminal)")
	cli.AddOutputFlag(cmd, &o.Output)
	return cmd
}

// Complete parses the base URL.
func (o *FetchOptions) Complete() error {
	if o.BaseURL == "" {
		return nil
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil {
		return fmt.Errorf("--base-url %q: %w", o.BaseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--base-url %q: want http://HOST/PATH or https://HOST/PATH", o.BaseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/"
	u.RawPath = ""
	o.base = u
	return nil
}

// Validate checks the flags and file names.
func (o *FetchOptions) Validate() error {
	if o.Verify != VerifySHA256 && o.Verify != VerifySize {
		return fmt.Errorf("--verify %q: want sha256 or size", o.Verify)
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be positive", o.Timeout)
	}
	if o.Retries < 0 {
		return fmt.Errorf("--retries %d: must be 0 or more", o.Retries)
	}
	if o.Dir == "" {
		return errors.New("--dir is empty")
	}
	for _, f := range o.Files {
		if !plainName(f) {
			return fmt.Errorf("%q is not a file name of a split (no directories)", f)
		}
		if f == shard.ManifestName {
			return fmt.Errorf("%s is always fetched; name the model files", f)
		}
	}
	return nil
}

func plainName(f string) bool {
	return f != "" && f != "." && f != ".." && !strings.ContainsAny(f, `/\`)
}

// Run fetches and verifies every file.
func (o *FetchOptions) Run(ctx context.Context, s cli.Streams) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	c := &fetcher{o: o, s: s, client: o.client()}
	man, err := c.manifest(ctx)
	if err != nil {
		return err
	}
	var results []FetchResult
	for _, name := range o.Files {
		r, err := c.file(ctx, man, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
		if o.Output == cli.OutputText {
			fmt.Fprintln(s.Out, r.summary())
		}
	}
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(s.Out, results)
	}
	return nil
}

func (r FetchResult) summary() string {
	switch r.Action {
	case "downloaded":
		return fmt.Sprintf("%s: downloaded %s in %.1fs (%.0f MB/s), sha256 %s verified", r.Path, bytesize.Format(r.Bytes), r.Seconds, mbPerSec(r.Bytes, time.Duration(r.Seconds*float64(time.Second))), r.SHA256)
	case "verified":
		return fmt.Sprintf("%s: already in place, %s, matches manifest.json", r.Path, bytesize.Format(r.Bytes))
	}
	return fmt.Sprintf("%s: present, %s (no --base-url and no manifest.json: not verified)", r.Path, bytesize.Format(r.Bytes))
}

func (o *FetchOptions) client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = o.Timeout
	t.ResponseHeaderTimeout = o.Timeout
	// Model files are already compressed as much as they will be; ask
	// for identity so Content-Length and ranges mean file bytes.
	t.DisableCompression = true
	return &http.Client{Transport: t}
}

type fetcher struct {
	o      *FetchOptions
	s      cli.Streams
	client *http.Client
}

// manifest downloads manifest.json (and keeps a copy in DIR), or reads
// DIR/manifest.json without a base URL; nil when there is none.
func (c *fetcher) manifest(ctx context.Context) (*shard.Manifest, error) {
	local := filepath.Join(c.o.Dir, shard.ManifestName)
	var b []byte
	if c.o.base == nil {
		var err error
		b, err = os.ReadFile(local)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	} else {
		u := c.url(shard.ManifestName)
		err := c.retry(ctx, u, func(ctx context.Context) error {
			resp, err := c.get(ctx, u, 0)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err = io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
			if err != nil {
				return fmt.Errorf("GET %s: %w", u, err)
			}
			if len(b) > maxManifest {
				return permanent(fmt.Errorf("GET %s: larger than %s: not a manifest", u, bytesize.Format(maxManifest)))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var m shard.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: not an ixctl split manifest: %w", shard.ManifestName, err)
	}
	for _, f := range m.Files() {
		if !plainName(f.File) || f.Bytes < 0 || !isSHA256(f.SHA256) {
			return nil, fmt.Errorf("%s: bad entry %q (%d bytes, sha256 %q)", shard.ManifestName, f.File, f.Bytes, f.SHA256)
		}
	}
	if c.o.base != nil {
		if err := writeAtomic(local, b); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

func isSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// file makes DIR/name a verified copy of the manifest's file.
func (c *fetcher) file(ctx context.Context, man *shard.Manifest, name string) (FetchResult, error) {
	path := filepath.Join(c.o.Dir, name)
	r := FetchResult{File: name, Path: path}
	var want *shard.File
	if man != nil {
		want = man.Lookup(name)
		if want == nil {
			return r, fmt.Errorf("not in %s (it lists %s)", shard.ManifestName, strings.Join(man.Names(), ", "))
		}
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && !st.Mode().IsRegular():
		return r, fmt.Errorf("%s is not a regular file", path)
	case err == nil && want == nil:
		r.Bytes, r.Action = st.Size(), "present"
		return r, nil
	case err == nil && st.Size() == want.Bytes:
		if c.o.Verify == VerifySize {
			r.Bytes, r.SHA256, r.Action = st.Size(), want.SHA256, "verified"
			return r, nil
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return r, err
		}
		if sum == want.SHA256 {
			r.Bytes, r.SHA256, r.Action = st.Size(), sum, "verified"
			return r, nil
		}
		fmt.Fprintf(c.s.Err, "%s: in place but its SHA-256 is %s, %s says %s: downloading it again\n", path, sum, shard.ManifestName, want.SHA256)
	case err == nil:
		fmt.Fprintf(c.s.Err, "%s: in place but %d bytes, %s says %d: downloading it again\n", path, st.Size(), shard.ManifestName, want.Bytes)
	case !errors.Is(err, os.ErrNotExist):
		return r, err
	}
	if c.o.base == nil {
		if err == nil {
			return r, fmt.Errorf("%w: %s does not match %s and --base-url is empty: set it (MODEL_URL) or replace the file", ErrVerify, path, shard.ManifestName)
		}
		return r, fmt.Errorf("%s is missing and --base-url is empty: set it (MODEL_URL in the manifests) or copy the file there", path)
	}
	start := time.Now()
	if err := c.download(ctx, name, path, want); err != nil {
		return r, err
	}
	r.Bytes, r.SHA256, r.Action, r.Seconds = want.Bytes, want.SHA256, "downloaded", time.Since(start).Seconds()
	return r, nil
}

// download streams the file into path.part (resuming what an earlier run
// left), checks size and SHA-256, syncs and renames it to path.
func (c *fetcher) download(ctx context.Context, name, path string, want *shard.File) (err error) {
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil && errors.Is(err, ErrVerify) {
			os.Remove(part)
		}
	}()
	h := sha256.New()
	have, err := io.Copy(h, f) // what an interrupted run left
	if err != nil {
		return err
	}
	if have > want.Bytes {
		if err := restart(f, h); err != nil {
			return err
		}
		have = 0
	}
	prog := c.progress(name, want.Bytes)
	defer prog.finish()
	prog.done = have
	u := c.url(name)
	err = c.retry(ctx, u, func(ctx context.Context) error {
		if have == want.Bytes {
			return nil
		}
		resp, err := c.get(ctx, u, have)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if have > 0 && resp.StatusCode != http.StatusPartialContent {
			// The server sent the whole file: start over.
			if err := restart(f, h); err != nil {
				return permanent(err)
			}
			have, prog.done = 0, 0
		}
		if n := resp.ContentLength; n >= 0 && have+n != want.Bytes {
			return permanent(fmt.Errorf("%w: GET %s: the server sends %d bytes from offset %d, %s says the file has %d", ErrVerify, u, n, have, shard.ManifestName, want.Bytes))
		}
		body := idleReader(resp.Body, c.o.Timeout)
		n, err := io.Copy(io.MultiWriter(f, h, prog), io.LimitReader(body, want.Bytes-have+1))
		have += n
		if err != nil {
			return fmt.Errorf("GET %s: after %d of %d bytes: %w", u, have, want.Bytes, err)
		}
		if have < want.Bytes {
			return fmt.Errorf("GET %s: the body ended after %d of %d bytes", u, have, want.Bytes)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if have != want.Bytes {
		return fmt.Errorf("%w: %s: got %d bytes, %s says %d", ErrVerify, u, have, shard.ManifestName, want.Bytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("%w: %s: SHA-256 %s, %s says %s", ErrVerify, u, got, shard.ManifestName, want.SHA256)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		f = nil
		return err
	}
	f = nil
	if err := os.Rename(part, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// restart empties the partial file and the digest.
func restart(f *os.File, h hash.Hash) error {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

func (c *fetcher) url(name string) string {
	return c.o.base.ResolveReference(&url.URL{Path: name}).String()
}

// httpError is a response status other than 200/206.
type httpError struct {
	url    string
	status string
	code   int
}

func (e *httpError) Error() string { return fmt.Sprintf("GET %s: %s", e.url, e.status) }

// get sends GET u (from byte offset when > 0) and returns a 200 or 206
// response.
func (c *fetcher) get(ctx context.Context, u string, offset int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, permanent(err)
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
		return resp, nil
	}
	resp.Body.Close()
	e := &httpError{url: u, status: resp.Status, code: resp.StatusCode}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
		return nil, e
	}
	return nil, permanent(e)
}

// permanentError marks an error that a retry cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// retry runs do until it succeeds, fails permanently, ctx ends or the
// retries are spent, waiting RetryWait and doubling between tries.
func (c *fetcher) retry(ctx context.Context, u string, do func(context.Context) error) error {
	wait := c.o.RetryWait
	for try := 0; ; try++ {
		err := do(ctx)
		var p permanentError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &p):
			return p.error
		case ctx.Err() != nil:
			return ctx.Err()
		case try >= c.o.Retries:
			if c.o.Retries > 0 {
				return fmt.Errorf("%w (gave up after %d retries)", err, c.o.Retries)
			}
			return err
		}
		fmt.Fprintf(c.s.Err, "%v: retrying in %v (%d of %d)\n", err, wait, try+1, c.o.Retries)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// errIdle is returned by an idle reader whose source sent nothing for its
// timeout.
var errIdle = errors.New("no data")

// idleReader reads r, failing with errIdle when one read waits longer
// than timeout (it closes r, which ends the read).
func idleReader(r io.ReadCloser, timeout time.Duration) io.Reader {
	return &idle{r: r, timeout: timeout}
}

type idle struct {
	r       io.ReadCloser
	timeout time.Duration
}

func (i *idle) Read(p []byte) (int, error) {
	t := time.AfterFunc(i.timeout, func() { i.r.Close() })
	n, err := i.r.Read(p)
	if !t.Stop() {
		return n, fmt.Errorf("%w for %v", errIdle, i.timeout)
	}
	return n, err
}

// fileSHA256 returns the hex SHA-256 of a file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeAtomic writes b to path through a synced temporary file and a
// rename.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".part"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// fetchProgress counts bytes written for newProgress: a bar when stderr
// is a terminal, a line at the start and one at the end otherwise.
type fetchProgress struct {
	update      func(done, total int64)
	finishFn    func()
	done, total int64
}

func (c *fetcher) progress(name string, total int64) *fetchProgress {
	p := &fetchProgress{total: total}
	p.update, p.finishFn = newProgress(c.s.Err, name, c.o.NoProgress)
	return p
}

func (p *fetchProgress) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if p.update != nil {
		p.update(p.done, p.total)
	}
	return len(b), nil
}

func (p *fetchProgress) finish() { p.finishFn() }
