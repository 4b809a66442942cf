// Command benchpaging is `make bench-paging`: it runs a Kimi-K2-shaped
// synthetic model that is larger than a memory limit under that limit,
// with plain mmap (no advice), with the expert pager and with llama.cpp
// (../shared/peer's llamaref, when installed), and prints tokens/s, bytes
// read per token and peak memory of each. With -simulate it replays
// expert traces through the eviction policies instead.
//
// The limit is a memory cgroup it creates under its own cgroup (root
// only): v2 memory.max, or v1 memory.limit_in_bytes where the memory
// controller is cgroup v1. Mapped file pages count toward it. Before each
// run it drops the model file from the page cache (POSIX_FADV_DONTNEED),
// so every configuration starts cold.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/inference-x/inference-x/internal/bytesize"
)

type options struct {
	model       string
	synthArgs   string
	ixctl       string
	coordinator string
	llamaref    string
	limit       string
	n           int
	prompt      string
	threads     int
	ctx         int
	reps        int
	configs     string
	jsonOut     string
	noCgroup    bool
	noRef       bool
	extra       string

	simulate string
	budgets  string
}

func main() {
	var o options
	fs := flag.NewFlagSet("benchpaging", flag.ContinueOnError)
	fs.StringVar(&o.model, "model", "out/kimi-k2-mini.Q4_K_M.gguf", "model file; generated with -synth when missing")
	fs.StringVar(&o.synthArgs, "synth", "--preset kimi-k2-mini --type Q4_K_M", "ixctl synth arguments that generate -model")
	fs.StringVar(&o.ixctl, "ixctl", "bin/ixctl", "ixctl binary")
	fs.StringVar(&o.coordinator, "coordinator", "bin/coordinator", "coordinator binary")
	fs.StringVar(&o.llamaref, "llamaref", defaultLlamaref(), "llama.cpp peer (empty or missing: skipped)")
	fs.StringVar(&o.limit, "limit", "", "memory limit (default: the model file size / 2)")
	fs.IntVar(&o.n, "n", 64, "tokens to generate")
	fs.StringVar(&o.prompt, "prompt", "The history of the mixture of experts", "prompt")
	fs.IntVar(&o.threads, "threads", 2, "threads")
	fs.IntVar(&o.ctx, "ctx", 512, "context size (both engines)")
	fs.IntVar(&o.reps, "reps", 2, "repetitions of each configuration (alternated; medians reported)")
	fs.StringVar(&o.configs, "configs", "plain,pager,pager:--expert-predict=false,llama.cpp",
		"configurations to run under the limit: plain, pager, llama.cpp, or pager:FLAGS (the pager with more coordinator flags)")
	fs.StringVar(&o.jsonOut, "json", "out/bench-paging.json", "write every run's measurements here")
	fs.BoolVar(&o.noRef, "no-reference", false, "skip the unconstrained reference run (outputs are then not compared)")
	fs.BoolVar(&o.noCgroup, "no-cgroup", false, "run without creating a cgroup (the caller has set the limit, e.g. systemd-run -p MemoryMax=)")
	fs.StringVar(&o.extra, "pager-flags", "", "extra coordinator flags for the pager configuration")
	fs.StringVar(&o.simulate, "simulate", "", "comma-separated expert traces (coordinator run --expert-trace) to replay through the policies")
	fs.StringVar(&o.budgets, "budgets", "20%,35%,50%", "-simulate budgets: sizes or shares of all expert bytes")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.simulate != "" {
		err = simulate(os.Stdout, &o)
	} else {
		err = bench(ctx, os.Stdout, &o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchpaging:", err)
		os.Exit(1)
	}
}

func defaultLlamaref() string {
	home := os.Getenv("IX_PEER_HOME")
	if home == "" {
		h, _ := os.UserHomeDir()
		home = filepath.Join(h, ".cache", "ix-peer")
	}
	return filepath.Join(home, "bin", "llamaref")
}

// run is one measured process.
type run struct {
	Config       string  `json:"config"`
	Limit        int64   `json:"limit_bytes"`
	Rep          int     `json:"rep"`
	Generated    int     `json:"generated_tokens"`
	Seconds      float64 `json:"seconds"` // prompt + generation, load excluded
	TokensPerSec float64 `json:"tokens_per_s"`
	WallSeconds  float64 `json:"wall_seconds"`
	ReadBytes    int64   `json:"read_bytes"`
	ReadPerToken int64   `json:"read_bytes_per_token"`
	PeakRSS      int64   `json:"peak_rss_bytes"`
	CgroupPeak   int64   `json:"cgroup_peak_bytes"`
	OOMKills     int64   `json:"oom_kills"`
	CachedBefore int64   `json:"cached_before_bytes"`
	Text         string  `json:"text"`
	SameOutput   *bool   `json:"same_as_unconstrained,omitempty"`
	Error        string  `json:"error,omitempty"`
	Stats        string  `json:"stats,omitempty"`
}

func bench(ctx context.Context, w io.Writer, o *options) error {
	if err := ensureModel(ctx, o); err != nil {
		return err
	}
	st, err := os.Stat(o.model)
	if err != nil {
		return err
	}
	limit := st.Size() / 2
	if o.limit != "" {
		if limit, err = bytesize.Parse(o.limit); err != nil {
			return fmt.Errorf("-limit: %w", err)
		}
	}
	if float64(st.Size()) < 1.5*float64(limit) {
		fmt.Fprintf(w, "warning: the model (%s) is less than 1.5x the limit (%s)\n", bytesize.Format(st.Size()), bytesize.Format(limit))
	}
	configs := strings.Split(o.configs, ",")
	if slices.Contains(configs, "llama.cpp") {
		if _, err := os.Stat(o.llamaref); err != nil {
			fmt.Fprintf(w, "llama.cpp: %s not found, skipped (bash ../shared/peer/setup.sh installs it)\n", o.llamaref)
			configs = slices.DeleteFunc(configs, func(c string) bool { return c == "llama.cpp" })
		}
	}
	fmt.Fprintf(w, "model %s (%s), limit %s (%.2fx smaller), %d tokens, %d threads, prompt %q\n",
		o.model, bytesize.Format(st.Size()), bytesize.Format(limit), float64(st.Size())/float64(limit), o.n, o.threads, o.prompt)

	var runs []*run
	ref := &run{}
	if !o.noRef {
		if ref, err = measure(ctx, o, "unconstrained", 0, 0); err != nil {
			return err
		}
		runs = append(runs, ref)
		report(w, ref)
	}
	for rep := 0; rep < o.reps; rep++ {
		for _, c := range configs {
			r, err := measure(ctx, o, c, limit, rep)
			if err != nil {
				return err
			}
			// llama.cpp is compared too: the engine's numerics are
			// bit-exact with it, so its greedy text should match.
			if r.Error == "" && !o.noRef {
				same := r.Text == ref.Text
				r.SameOutput = &same
			}
			runs = append(runs, r)
			report(w, r)
		}
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(runs, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	table(w, runs, append([]string{"unconstrained"}, configs...))
	for _, r := range runs {
		if r.SameOutput != nil && !*r.SameOutput && r.Config != "llama.cpp" {
			return fmt.Errorf("%s rep %d: the greedy output differs from the unconstrained run", r.Config, r.Rep)
		}
		if r.Error != "" && r.Config != "llama.cpp" {
			return fmt.Errorf("%s rep %d: %s", r.Config, r.Rep, r.Error)
		}
	}
	return nil
}

// ensureModel generates the model with ixctl synth when it is missing.
func ensureModel(ctx context.Context, o *options) error {
	if _, err := os.Stat(o.model); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(o.model), 0o755); err != nil {
		return err
	}
	args := append([]string{"synth"}, strings.Fields(o.synthArgs)...)
	tmp := o.model + ".tmp"
	args = append(args, "--out", tmp)
	fmt.Fprintf(os.Stderr, "generating %s: %s %s\n", o.model, o.ixctl, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, o.ixctl, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return os.Rename(tmp, o.model)
}

// command returns the argv of a configuration.
func (o *options) command(config string) []string {
	n, t, c := strconv.Itoa(o.n), strconv.Itoa(o.threads), strconv.Itoa(o.ctx)
	if config == "llama.cpp" {
		return []string{o.llamaref, "generate", o.model, "--prompt", o.prompt, "-n", n, "--threads", t, "--ctx", c, "--kv", "f32", "--no-repack"}
	}
	mem := "auto"
	if config == "plain" || config == "unconstrained" {
		mem = "plain"
	}
	args := []string{o.coordinator, "run", "-m", o.model, "-p", o.prompt, "-n", n, "--temp", "0", "-t", t,
		"--ctx", c, "--kv-type", "f32", "--no-display-prompt", "--expert-stats", "--expert-mem", mem}
	if config == "pager" {
		args = append(args, strings.Fields(o.extra)...)
	}
	// "pager:FLAGS" is the pager with more coordinator flags (a variant).
	if flags, ok := strings.CutPrefix(config, "pager:"); ok {
		args = append(args, strings.Fields(o.extra)...)
		args = append(args, strings.Fields(flags)...)
	}
	return args
}

var (
	rePrompt = regexp.MustCompile(`prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens`)
	reEval   = regexp.MustCompile(`ix:\s+eval time =\s*([\d.]+) ms /\s*(\d+) runs`)
)

// measure runs one configuration, cold, under limit (0: none).
func measure(ctx context.Context, o *options, config string, limit int64, rep int) (*run, error) {
	r := &run{Config: config, Limit: limit, Rep: rep}
	cached, err := dropCache(o.model)
	if err != nil {
		return nil, err
	}
	r.CachedBefore = cached
	argv := o.command(config)
	var cg *cgroup
	if limit > 0 && !o.noCgroup {
		if cg, err = newCgroup(limit); err != nil {
			return nil, err
		}
		defer cg.remove()
		argv = append([]string{"sh", "-c", `echo $$ > "$0" && exec "$@"`, cg.procs()}, argv...)
	}
	io0, err := readIOBytes()
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	fmt.Fprintf(os.Stderr, "running %s (rep %d): %s\n", config, rep, strings.Join(argv, " "))
	start := time.Now()
	runErr := cmd.Run()
	r.WallSeconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// The reaped child's I/O counts are added to ours.
	if io1, err := readIOBytes(); err == nil {
		r.ReadBytes = io1 - io0
	}
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			r.PeakRSS = ru.Maxrss << 10
		}
	}
	if cg != nil {
		r.CgroupPeak, r.OOMKills = cg.peak(), cg.oomKills()
	}
	if runErr != nil {
		r.Error = fmt.Sprintf("%v; stderr: %s", runErr, lastLines(stderr.String(), 5))
		return r, nil
	}
	if config == "llama.cpp" {
		var out struct {
			OK        bool    `json:"ok"`
			Error     string  `json:"error"`
			Seconds   float64 `json:"seconds"`
			Generated struct {
				Tokens []int `json:"tokens"`
			} `json:"generated"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || !out.OK {
			r.Error = fmt.Sprintf("llamaref: %v %s", err, out.Error)
			return r, nil
		}
		r.Generated, r.Seconds, r.Text = len(out.Generated.Tokens), out.Seconds, out.Text
	} else {
		p, e := rePrompt.FindStringSubmatch(stderr.String()), reEval.FindStringSubmatch(stderr.String())
		if p == nil || e == nil {
			r.Error = "no timings in the output: " + lastLines(stderr.String(), 5)
			return r, nil
		}
		pms, _ := strconv.ParseFloat(p[1], 64)
		ems, _ := strconv.ParseFloat(e[1], 64)
		r.Generated, _ = strconv.Atoi(e[2])
		r.Seconds = (pms + ems) / 1000
		r.Text = strings.TrimSuffix(stdout.String(), "\n")
		if i := strings.Index(stderr.String(), "expert store:"); i >= 0 {
			r.Stats = stderr.String()[i:]
		}
	}
	if r.Seconds > 0 {
		r.TokensPerSec = float64(r.Generated) / r.Seconds
	}
	if r.Generated > 0 {
		r.ReadPerToken = r.ReadBytes / int64(r.Generated)
	}
	return r, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

func report(w io.Writer, r *run) {
	if r.Error != "" {
		fmt.Fprintf(w, "%-13s rep %d: FAILED: %s (peak %s, oom kills %d)\n", r.Config, r.Rep, r.Error, bytesize.Format(r.CgroupPeak), r.OOMKills)
		return
	}
	same := ""
	if r.SameOutput != nil {
		same = fmt.Sprintf(", same output: %v", *r.SameOutput)
	}
	fmt.Fprintf(w, "%-13s rep %d: %.2f tokens/s (%d in %.1f s, wall %.1f s), read %s (%s/token), peak RSS %s, cgroup peak %s%s\n",
		r.Config, r.Rep, r.TokensPerSec, r.Generated, r.Seconds, r.WallSeconds, bytesize.Format(r.ReadBytes), bytesize.Format(r.ReadPerToken),
		bytesize.Format(r.PeakRSS), bytesize.Format(r.CgroupPeak), same)
	for _, line := range strings.Split(r.Stats, "\n") {
		if strings.HasPrefix(line, "  uses") || strings.HasPrefix(line, "  prediction") || strings.HasPrefix(line, "expert store:") {
			fmt.Fprintln(w, "    "+strings.TrimSpace(line))
		}
	}
}

// table prints a markdown table per configuration: every rep's tokens/s,
// the (upper) medians of the rest.
func table(w io.Writer, runs []*run, configs []string) {
	fmt.Fprintln(w, "| configuration | limit | tokens/s (each rep) | read per token | peak RSS | cgroup peak | greedy output |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, c := range configs {
		var rs []*run
		for _, r := range runs {
			if r.Config == c {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		ok := rs[:0:0]
		for _, r := range rs {
			if r.Error == "" {
				ok = append(ok, r)
			}
		}
		limit := "none"
		if rs[0].Limit > 0 {
			limit = bytesize.Format(rs[0].Limit)
		}
		if len(ok) == 0 {
			fmt.Fprintf(w, "| %s | %s | failed: %s | | | | |\n", c, limit, rs[0].Error)
			continue
		}
		med := func(f func(*run) float64) float64 {
			v := make([]float64, len(ok))
			for i, r := range ok {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		out := "reference"
		if c != "unconstrained" {
			out = "equal"
			for _, r := range ok {
				switch {
				case r.SameOutput == nil:
					out = "not compared"
				case !*r.SameOutput:
					out = "DIFFERS"
				}
			}
		}
		cgPeak := "-"
		if rs[0].Limit > 0 {
			cgPeak = bytesize.Format(int64(med(func(r *run) float64 { return float64(r.CgroupPeak) })))
		}
		var tps []string
		for _, r := range ok {
			tps = append(tps, fmt.Sprintf("%.2f", r.TokensPerSec))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", c, limit,
			strings.Join(tps, ", "),
			bytesize.Format(int64(med(func(r *run) float64 { return float64(r.ReadPerToken) }))),
			bytesize.Format(int64(med(func(r *run) float64 { return float64(r.PeakRSS) }))),
			cgPeak, out)
	}
}

// dropCache evicts path from the page cache and returns how much of it
// was cached before.
func dropCache(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cached, err := fileCached(f)
	if err != nil {
		return 0, err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return 0, err
	}
	left, err := fileCached(f)
	if err != nil {
		return 0, err
	}
	if left > 16<<20 {
		return 0, fmt.Errorf("%s: %s still cached after FADV_DONTNEED (is another process mapping it?)", path, bytesize.Format(left))
	}
	return cached, nil
}

// fileCached counts the file's pages in the page cache (mincore over a
// fresh mapping).
func fileCached(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, err
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(data)
	ps := os.Getpagesize()
	vec := make([]byte, (len(data)+ps-1)/ps)
	if err := mincore(data, vec); err != nil {
		return 0, err
	}
	var n int64
	for _, v := range vec {
		n += int64(v & 1)
	}
	return n * int64(ps), nil
}

func readIOBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "read_bytes:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("no read_bytes in /proc/self/io")
}
