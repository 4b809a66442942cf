package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testRoot is a command tree shaped like the project's: a root with a
// "serve" command holding llama.cpp-style flags. got records what serve
// ran with.
type testRun struct {
	slots, n, threads int
	temp              float64
	prompt, output    string
	verbose           bool
	args              []string
}

func testRoot(got *testRun, fail error) func(Streams) *cobra.Command {
	return func(Streams) *cobra.Command {
		root := &cobra.Command{Use: "tool"}
		serve := &cobra.Command{
			Use:  "serve",
			Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				got.args = args
				return fail
			},
		}
		f := serve.Flags()
		f.IntVar(&got.slots, "slots", 1, "slots")
		f.IntVarP(&got.n, "n-predict", "n", 0, "tokens")
		f.IntVarP(&got.threads, "threads", "t", 0, "threads")
		f.Float64Var(&got.temp, "temp", 0.8, "temperature")
		f.StringVarP(&got.prompt, "prompt", "p", "", "prompt")
		f.StringVarP(&got.output, "output", "o", "text", "output")
		f.BoolVarP(&got.verbose, "verbose", "v", false, "verbose")
		Alias(f, "slots", "parallel")
		var x, y bool
		f.BoolVar(&x, "x-one", false, "x")
		f.BoolVar(&y, "y-one", false, "y")
		serve.MarkFlagsMutuallyExclusive("x-one", "y-one")
		pull := &cobra.Command{Use: "pull", RunE: func(*cobra.Command, []string) error { return nil }}
		var from string
		pull.Flags().StringVar(&from, "from", "", "source")
		pull.MarkFlagRequired("from")
		root.AddCommand(serve, pull)
		return root
	}
}

func run(t *testing.T, fail error, args ...string) (testRun, string, int) {
	t.Helper()
	var got testRun
	var out, errs bytes.Buffer
	code := Run(context.Background(), "tool", testRoot(&got, fail), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errs})
	return got, errs.String(), code
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		fail error
		code int
		msg  string
	}{
		{[]string{"serve"}, nil, ExitOK, ""},
		{[]string{"help", "serve"}, nil, ExitOK, ""},
		{[]string{"completion", "bash"}, nil, ExitOK, ""},
		{[]string{"__complete", "serve", "--sl"}, nil, ExitOK, ""},
		{[]string{"serve", "--nope"}, nil, ExitUsage, "unknown flag: --nope"},
		{[]string{"serve", "--slots", "x"}, nil, ExitUsage, `invalid argument "x"`},
		{[]string{"serve", "--slots"}, nil, ExitUsage, "flag needs an argument"},
		{[]string{"serve", "a", "b"}, nil, ExitUsage, "accepts at most 1 arg"},
		{[]string{"pull"}, nil, ExitUsage, `required flag(s) "from" not set`},
		{[]string{"pull", "--from", "x"}, nil, ExitOK, ""},
		{[]string{"serve", "--x-one", "--y-one"}, nil, ExitUsage, "none of the others can be"},
		{[]string{"srve"}, nil, ExitUsage, `unknown command "srve" for "tool"; did you mean serve?`},
		{[]string{"serve"}, Usagef("--slots 0 must be positive"), ExitUsage, "--slots 0 must be positive"},
		{[]string{"serve"}, fmt.Errorf("validate: %w", Usage(errors.New("wrapped"))), ExitUsage, "validate: wrapped"},
		{[]string{"serve"}, errors.New("disk full"), ExitError, "tool: disk full"},
		{[]string{"serve"}, fmt.Errorf("step: %w", context.Canceled), ExitInterrupted, "tool: interrupted"},
	} {
		_, errs, code := run(t, tc.fail, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.msg) {
			t.Errorf("%q: exit %d, want %d; stderr %q, want %q", tc.args, code, tc.code, errs, tc.msg)
		}
		if strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%q: the error takes more than one line: %q", tc.args, errs)
		}
	}
}

func TestInterruptedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var got testRun
	var errs bytes.Buffer
	// A gRPC call cut by the signal ends with a status error (code
	// Canceled) that does not wrap context.Canceled: still 130.
	fail := status.Error(codes.Canceled, "context canceled")
	root := func(s Streams) *cobra.Command { cancel(); return testRoot(&got, fail)(s) }
	if code := Run(ctx, "tool", root, []string{"serve"}, Streams{Out: &bytes.Buffer{}, Err: &errs}); code != ExitInterrupted {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
}

func TestLlamaSpellings(t *testing.T) {
	got, errs, code := run(t, nil, "serve", "-np", "4", "-n128", "-t", "-3", "--temp", "-1", "-ojson", "-vp", "-ngl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// -np is --parallel, an alias of --slots; "-3", "-1" and the prompt
	// "-ngl" are values, not flags.
	want := testRun{slots: 4, n: 128, threads: -3, temp: -1, prompt: "-ngl", output: "json", verbose: true, args: nil}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parsed %+v, want %+v", got, want)
	}
	if got, _, code = run(t, nil, "serve", "--parallel=3"); code != 0 || got.slots != 3 {
		t.Fatalf("--parallel=3: %d %+v", code, got)
	}
	if got, _, code = run(t, nil, "serve", "-np=2"); code != 0 || got.slots != 2 {
		t.Fatalf("-np=2: %d %+v", code, got)
	}
	// After "--" nothing is rewritten.
	if got, errs, code = run(t, nil, "serve", "--", "-ngl"); code != 0 || len(got.args) != 1 || got.args[0] != "-ngl" {
		t.Fatalf("after --: %d %+v %s", code, got, errs)
	}

	for _, tc := range []struct{ arg, msg string }{
		{"-ngl", "-ngl (llama.cpp): GPU offload does not apply: Inference-X runs on CPU; drop it"},
		{"--n-gpu-layers=99", "GPU offload does not apply"},
		{"-fa", "flash attention off"},
		{"-ctk", "--kv-type"},
		{"-nkvo", "KV offload does not apply"},
		{"-sys", "llama.cpp --system-prompt) is not a flag of tool serve"},
		{"-nt", "single-dash multi-letter flag -nt: use the --long-name spelling"}, // not -n t
		{"-xyz", "single-dash multi-letter flag -xyz"},
		{"-vnx", "single-dash multi-letter flag -vnx"},
	} {
		_, errs, code := run(t, nil, "serve", tc.arg, "0")
		if code != ExitUsage || !strings.Contains(errs, tc.msg) {
			t.Errorf("%s: exit %d, stderr %q, want %q", tc.arg, code, errs, tc.msg)
		}
	}
	// A one-letter unknown shorthand is pflag's to report.
	if _, errs, code := run(t, nil, "serve", "-x"); code != ExitUsage || !strings.Contains(errs, "unknown shorthand flag: 'x'") {
		t.Fatalf("-x: %d %s", code, errs)
	}
}

func TestAliasChanged(t *testing.T) {
	c := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	var ctx int
	c.Flags().IntVarP(&ctx, "ctx", "c", 4096, "context size")
	Alias(c.Flags(), "ctx", "ctx-size")
	if err := c.Flags().Parse([]string{"--ctx-size", "512"}); err != nil || ctx != 512 || !c.Flags().Changed("ctx") {
		t.Fatalf("--ctx-size: %v %d", err, ctx)
	}
	if u := c.Flags().Lookup("ctx").Usage; !strings.Contains(u, "(also --ctx-size)") {
		t.Fatalf("usage %q", u)
	}
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.FailedPrecondition, "replicas 4 > 3 nodes"), "replicas 4 > 3 nodes (failed precondition)"},
		{fmt.Errorf("drain node-a: %w", status.Error(codes.NotFound, "unknown node node-a")), "drain node-a: unknown node node-a (not found)"},
		{status.Error(codes.Unknown, "boom"), "boom"},
		{status.Error(codes.Unavailable, "connection refused: unavailable"), "connection refused: unavailable"},
		{errors.New("plain"), "plain"},
	} {
		if got := ErrorText(tc.err); got != tc.want {
			t.Errorf("ErrorText(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestCheckJSONKeys(t *testing.T) {
	type inner struct {
		OK  int `json:"ok_key"`
		Bad int
	}
	type embedded struct {
		CamelCase string `json:"camelCase,omitempty"`
	}
	type outer struct {
		embedded
		Items   []inner           `json:"items"`
		ByName  map[string]*inner `json:"by_name"`
		Skipped int               `json:"-"`
		hidden  int
	}
	err := CheckJSONKeys(outer{})
	if err == nil || err.Error() != "JSON keys not in snake_case: camelCase, items.Bad, by_name.Bad" {
		t.Fatalf("%v", err)
	}
	if err := CheckJSONKeys(inner{}); err == nil {
		t.Fatal("Bad passed")
	}
}
