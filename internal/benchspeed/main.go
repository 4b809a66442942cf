// Command benchspeed is `make bench`'s model half: it synthesizes the
// benchmark models with ixctl when they are missing, measures prompt
// processing and generation with `coordinator bench`, and, when the
// llama.cpp peer (../shared/peer, installed as llamaref) is present, runs
// llama.cpp on the same files and thread counts, alternating the engines
// run by run, and prints medians and our/llama.cpp ratios.
//
//	go run ./internal/benchspeed [-models llama-7b,qwen3-30b-a3b,kimi-k2-mini] [-threads 1,2] [-reps 5]
//
// llama.cpp runs twice: with its defaults as a user gets them (KV F16,
// flash attention auto, weight repacking on, which on AMX machines sends
// prompt processing to AMX tiles) and with --no-repack (ggml's vec_dot
// kernels, the arithmetic this project reproduces).
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
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchspeed:", err)
		os.Exit(1)
	}
}

// preset is one benchmark model: an ixctl synth preset at Q4_K_M, with
// its layer count cut where the full model would not fit in memory.
type preset struct {
	name   string
	layers int // 0: the preset's own
}

var presets = map[string]preset{
	"llama-7b":      {name: "llama-7b"},
	"qwen3-30b-a3b": {name: "qwen3-30b-a3b", layers: 12}, // 48 layers are 18 GB; 12 (4.6 GiB) leave room on a 24 GiB machine and take half an hour, not hours, to synthesize
	"kimi-k2-mini":  {name: "kimi-k2-mini"},
}

func (p preset) file() string {
	if p.layers > 0 {
		return fmt.Sprintf("%s-L%d.Q4_K_M.gguf", p.name, p.layers)
	}
	return p.name + ".Q4_K_M.gguf"
}

type options struct {
	models  []string
	threads []int
	reps    int
	pp, tg  int
	dir     string
	bin     string
	peer    string
	jsonOut string
	// noRepack also runs llama.cpp with --no-repack.
	noRepack bool
}

// result is one engine's measurements on one model and thread count.
type result struct {
	Engine string    `json:"engine"`
	Model  string    `json:"model"`
	Thread int       `json:"threads"`
	PP     []float64 `json:"pp_tok_s_all"`
	TG     []float64 `json:"tg_tok_s_all"`
	// Err is the first error of a failed engine (its later runs are
	// skipped); the table prints "failed".
	Err string `json:"error,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchspeed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	models := fs.String("models", "llama-7b,qwen3-30b-a3b,kimi-k2-mini", "presets (or .gguf paths), comma separated")
	threads := fs.String("threads", "1,2", "thread counts, comma separated")
	o := options{}
	fs.IntVar(&o.reps, "reps", 5, "runs per engine (medians are reported)")
	fs.IntVar(&o.pp, "p", 512, "prompt tokens")
	fs.IntVar(&o.tg, "n", 128, "generated tokens")
	fs.StringVar(&o.dir, "dir", "out/bench", "where the synthesized models live")
	fs.StringVar(&o.bin, "bin", "bin", "where coordinator and ixctl are")
	fs.StringVar(&o.peer, "peer", defaultPeer(), "llamaref binary (skipped when absent)")
	fs.StringVar(&o.jsonOut, "json", "", "also write every run as JSON to this file")
	fs.BoolVar(&o.noRepack, "no-repack", true, "also run llama.cpp with --no-repack")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.models = strings.Split(*models, ",")
	for _, t := range strings.Split(*threads, ",") {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return fmt.Errorf("bad thread count %q", t)
		}
		o.threads = append(o.threads, n)
	}
	if _, err := os.Stat(o.peer); err != nil {
		fmt.Fprintf(stderr, "llama.cpp peer %s not found: measuring Inference-X only\n", o.peer)
		o.peer = ""
	}
	var all []result
	fmt.Fprintf(stdout, "pp%d and tg%d, median of %d runs per engine, engines alternating; %s\n\n", o.pp, o.tg, o.reps, machine())
	fmt.Fprintln(stdout, "| model | threads | pp ours | pp llama.cpp | ratio | pp llama.cpp no-repack | ratio | tg ours | tg llama.cpp | ratio | tg llama.cpp no-repack | ratio |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, m := range o.models {
		path, err := o.model(ctx, m, stderr)
		if err != nil {
			return err
		}
		for _, t := range o.threads {
			rs, err := o.measure(ctx, path, t, stderr)
			if err != nil {
				return err
			}
			all = append(all, rs...)
			fmt.Fprintln(stdout, row(filepath.Base(path), t, rs))
		}
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(o.jsonOut, b, 0o644)
	}
	return nil
}

func defaultPeer() string {
	home := os.Getenv("IX_PEER_HOME")
	if home == "" {
		h, _ := os.UserHomeDir()
		home = filepath.Join(h, ".cache", "ix-peer")
	}
	return filepath.Join(home, "bin", "llamaref")
}

// machine describes the CPU and load for the header line.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load average " + strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%s, %s%s, %s", cpu, nproc(), load, time.Now().UTC().Format("2006-01-02 15:04 MST"))
}

func nproc() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "? CPUs"
	}
	return fmt.Sprintf("%d CPUs", strings.Count(string(b), "\nprocessor")+1)
}

// model returns the path of a preset's file, synthesizing it when absent,
// or m itself when it names a file.
func (o *options) model(ctx context.Context, m string, stderr io.Writer) (string, error) {
	if strings.HasSuffix(m, ".gguf") {
		return m, nil
	}
	p, ok := presets[m]
	if !ok {
		return "", fmt.Errorf("unknown model %q (want one of llama-7b, qwen3-30b-a3b, kimi-k2-mini or a .gguf path)", m)
	}
	path := filepath.Join(o.dir, p.file())
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return "", err
	}
	args := []string{"synth", "--preset", p.name, "--type", "Q4_K_M", "--out", path + ".tmp"}
	if p.layers > 0 {
		args = append(args, "--layers", strconv.Itoa(p.layers))
	}
	fmt.Fprintf(stderr, "synthesizing %s (ixctl %s)\n", path, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, filepath.Join(o.bin, "ixctl"), args...)
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ixctl synth %s: %w", p.name, err)
	}
	return path, os.Rename(path+".tmp", path)
}

// engine is one way of running a model.
type engine struct {
	name string
	run  func(ctx context.Context, path string, threads int) (pp, tg float64, err error)
}

func (o *options) engines() []engine {
	es := []engine{{"ours", o.ours}}
	if o.peer != "" {
		es = append(es, engine{"llama.cpp", o.llama(false)})
		if o.noRepack {
			es = append(es, engine{"llama.cpp no-repack", o.llama(true)})
		}
	}
	return es
}

// measure alternates the engines, one run each per round, starting each
// round with the next engine so that none always runs first.
func (o *options) measure(ctx context.Context, path string, threads int, stderr io.Writer) ([]result, error) {
	es := o.engines()
	rs := make([]result, len(es))
	for i, e := range es {
		rs[i] = result{Engine: e.name, Model: path, Thread: threads}
	}
	for r := 0; r < o.reps; r++ {
		for k := range es {
			i := (r + k) % len(es)
			if rs[i].Err != "" {
				continue
			}
			pp, tg, err := es[i].run(ctx, path, threads)
			if err != nil {
				if i == 0 || ctx.Err() != nil {
					return nil, fmt.Errorf("%s on %s, %d threads: %w", es[i].name, path, threads, err)
				}
				// A reference engine that cannot run this model (llama.cpp's
				// repacked buffers abort on some architectures) is reported,
				// not fatal.
				rs[i].Err = err.Error()
				fmt.Fprintf(stderr, "%s t%d %s failed: %v\n", filepath.Base(path), threads, es[i].name, err)
				continue
			}
			fmt.Fprintf(stderr, "%s t%d run %d %-20s pp %8.2f  tg %7.2f\n", filepath.Base(path), threads, r+1, es[i].name, pp, tg)
			rs[i].PP = append(rs[i].PP, pp)
			rs[i].TG = append(rs[i].TG, tg)
		}
	}
	return rs, nil
}

func (o *options) ours(ctx context.Context, path string, threads int) (float64, float64, error) {
	out, err := output(ctx, filepath.Join(o.bin, "coordinator"), "bench", "-m", path,
		"-p", strconv.Itoa(o.pp), "-n", strconv.Itoa(o.tg), "-r", "1", "-t", strconv.Itoa(threads), "-o", "json")
	if err != nil {
		return 0, 0, err
	}
	var r struct {
		PP float64 `json:"pp_tok_s"`
		TG float64 `json:"tg_tok_s"`
	}
	return r.PP, r.TG, json.Unmarshal(out, &r)
}

func (o *options) llama(noRepack bool) func(ctx context.Context, path string, threads int) (float64, float64, error) {
	return func(ctx context.Context, path string, threads int) (float64, float64, error) {
		args := []string{"bench", path, "--pp", strconv.Itoa(o.pp), "--tg", strconv.Itoa(o.tg), "--reps", "1", "--threads", strconv.Itoa(threads)}
		if noRepack {
			args = append(args, "--no-repack")
		}
		out, err := output(ctx, o.peer, args...)
		if err != nil {
			return 0, 0, err
		}
		var r struct {
			OK    bool    `json:"ok"`
			Error string  `json:"error"`
			PP    float64 `json:"pp_tps"`
			TG    float64 `json:"tg_tps"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return 0, 0, err
		}
		if !r.OK {
			return 0, 0, errors.New(r.Error)
		}
		return r.PP, r.TG, nil
	}
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// row formats one table row: ours, then each llama.cpp variant with our
// ratio to it.
func row(model string, threads int, rs []result) string {
	cell := func(pick func(result) []float64) string {
		ours := median(pick(rs[0]))
		s := fmt.Sprintf("%.2f", ours)
		for _, r := range rs[1:] {
			if r.Err != "" {
				s += " | failed | -"
				continue
			}
			ref := median(pick(r))
			s += fmt.Sprintf(" | %.2f | %.2fx", ref, ours/ref)
		}
		for i := len(rs); i < 3; i++ {
			s += " | - | -"
		}
		return s
	}
	return fmt.Sprintf("| %s | %d | %s | %s |", model, threads,
		cell(func(r result) []float64 { return r.PP }), cell(func(r result) []float64 { return r.TG }))
}
