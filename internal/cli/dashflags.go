package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// dashRule says what to do with one of llama.cpp's flag spellings that
// pflag would misread: single-dash multi-letter flags (pflag parses
// "-ngl 0" as "-n gl" and "0") and long flags that have no meaning here.
type dashRule struct {
	to     string // rewrite to this long flag (when the command has it)
	refuse string // or refuse with this explanation
}

const cpuOnly = "does not apply: Inference-X runs on CPU; drop it"

// dashFlags is the table of llama.cpp spellings we rewrite or refuse, by
// the token before any "=".
var dashFlags = map[string]dashRule{
	"-np":  {to: "--parallel"},
	"-sys": {to: "--system-prompt"},
	"-to":  {to: "--timeout"},

	"-ngl":            {refuse: "GPU offload " + cpuOnly},
	"--gpu-layers":    {refuse: "GPU offload " + cpuOnly},
	"--n-gpu-layers":  {refuse: "GPU offload " + cpuOnly},
	"-ngld":           {refuse: "GPU offload " + cpuOnly},
	"-sm":             {refuse: "splitting over GPUs " + cpuOnly},
	"--split-mode":    {refuse: "splitting over GPUs " + cpuOnly},
	"-mg":             {refuse: "choosing a GPU " + cpuOnly},
	"--main-gpu":      {refuse: "choosing a GPU " + cpuOnly},
	"-ts":             {refuse: "splitting over GPUs " + cpuOnly},
	"--tensor-split":  {refuse: "splitting over GPUs " + cpuOnly},
	"-dev":            {refuse: "choosing a device " + cpuOnly},
	"--device":        {refuse: "choosing a device " + cpuOnly},
	"-nkvo":           {refuse: "KV offload " + cpuOnly},
	"--no-kv-offload": {refuse: "KV offload " + cpuOnly},
	"-kvo":            {refuse: "KV offload " + cpuOnly},
	"--kv-offload":    {refuse: "KV offload " + cpuOnly},
	"-ot":             {refuse: "overriding tensor buffers " + cpuOnly + " (routed experts go to expert nodes with --nodes/--placement)"},
	"--override-tensor": {
		refuse: "overriding tensor buffers " + cpuOnly + " (routed experts go to expert nodes with --nodes/--placement)"},
	"-cmoe":        {refuse: "experts already run on CPU (here or on expert nodes); drop it"},
	"--cpu-moe":    {refuse: "experts already run on CPU (here or on expert nodes); drop it"},
	"-ncmoe":       {refuse: "experts already run on CPU (here or on expert nodes); drop it"},
	"--n-cpu-moe":  {refuse: "experts already run on CPU (here or on expert nodes); drop it"},
	"-fa":          {refuse: "there is one attention path (the arithmetic of llama.cpp's CPU attention with flash attention off); drop it"},
	"--flash-attn": {refuse: "there is one attention path (the arithmetic of llama.cpp's CPU attention with flash attention off); drop it"},
	"-cb":          {refuse: "continuous batching is always on in serve (--slots sequences per step); drop it"},
	"--cont-batching": {
		refuse: "continuous batching is always on in serve (--slots sequences per step); drop it"},
	"-nocb":              {refuse: "continuous batching is always on; use --slots 1 for one sequence at a time"},
	"--no-cont-batching": {refuse: "continuous batching is always on; use --slots 1 for one sequence at a time"},
	"-ctk":               {refuse: "use --kv-type (one type for K and V: f16 or f32)"},
	"--cache-type-k":     {refuse: "use --kv-type (one type for K and V: f16 or f32)"},
	"-ctv":               {refuse: "use --kv-type (one type for K and V: f16 or f32)"},
	"--cache-type-v":     {refuse: "use --kv-type (one type for K and V: f16 or f32)"},
	"-tb":                {refuse: "one thread count serves prompt and generation: use -t/--threads"},
	"--threads-batch":    {refuse: "one thread count serves prompt and generation: use -t/--threads"},
	"-ub":                {refuse: "one batch size: use -b/--batch-size"},
	"--ubatch-size":      {refuse: "one batch size: use -b/--batch-size"},
	"-hf":                {refuse: "nothing is downloaded: give a local GGUF file with -m"},
	"-hfr":               {refuse: "nothing is downloaded: give a local GGUF file with -m"},
	"--hf-repo":          {refuse: "nothing is downloaded: give a local GGUF file with -m"},
	"-hff":               {refuse: "nothing is downloaded: give a local GGUF file with -m"},
	"--hf-file":          {refuse: "nothing is downloaded: give a local GGUF file with -m"},
	"-mu":                {refuse: "nothing is downloaded: give a local GGUF file with -m"},
	"--model-url":        {refuse: "nothing is downloaded: give a local GGUF file with -m"},
	"-cnv":               {refuse: "there is no interactive mode: use coordinator run --chat -p PROMPT, or serve"},
	"-no-cnv":            {refuse: "there is no interactive mode to turn off; drop it"},
	"-lv":                {refuse: "use --log-level debug|info|warn|error"},
	"--verbosity":        {refuse: "use --log-level debug|info|warn|error"},
}

// rewriteArgs applies dashFlags to the arguments of the command they
// select, before cobra parses them, and refuses any other single-dash
// token that pflag would misread as a cluster of one-letter flags (a
// letter that is not one of the command's shorthands, or a numeric
// shorthand followed by letters: -ngl is not -n gl). Values of flags
// that take one are left alone (--temp -1, -p -fa), and so is everything
// after "--". Errors are usage errors.
func rewriteArgs(root *cobra.Command, args []string) ([]string, error) {
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		return args, nil // shell completion: cobra reads partial command lines itself
	}
	root.InitDefaultHelpCmd() // as ExecuteC does before it looks the command up
	root.InitDefaultCompletionCmd(args...)
	cmd, _, findErr := root.Find(args)
	if cmd == nil {
		cmd = root
	}
	cmd.InitDefaultHelpFlag()
	cmd.InheritedFlags() // merges the persistent flags into cmd.Flags()
	fs := cmd.Flags()
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			out = append(out, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		if r, ok := dashFlags[name]; ok {
			if r.refuse != "" {
				return nil, Usagef("%s (llama.cpp): %s", name, r.refuse)
			}
			f := fs.Lookup(r.to[2:])
			if f == nil {
				return nil, Usagef("%s (llama.cpp %s) is not a flag of %s", name, r.to, cmd.CommandPath())
			}
			if hasValue {
				out = append(out, r.to+"="+value)
				continue
			}
			out = append(out, r.to)
			if takesValue(f) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		if strings.HasPrefix(a, "--") {
			out = append(out, a)
			if f := fs.Lookup(name[2:]); f != nil && !hasValue && takesValue(f) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		skipNext, err := checkCluster(fs, a)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		if skipNext && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	if findErr != nil {
		return nil, Usage(errors.New(oneLine(findErr.Error())))
	}
	return out, nil
}

// oneLine puts cobra's "unknown command" error with its suggestions on
// one line: `unknown command "srve" for "coordinator"; did you mean serve?`.
func oneLine(msg string) string {
	const did = "Did you mean this?"
	i := strings.Index(msg, did)
	if i < 0 {
		return strings.Join(strings.Fields(msg), " ")
	}
	return strings.TrimSpace(msg[:i]) + "; did you mean " + strings.Join(strings.Fields(msg[i+len(did):]), " or ") + "?"
}

// checkCluster checks a single-dash token of two or more characters the
// way pflag will read it (one-letter flags, the last of which may take
// the rest as its value) and reports whether the next argument is that
// flag's value.
func checkCluster(fs *pflag.FlagSet, a string) (skipNext bool, err error) {
	if !isLetter(a[1]) {
		return false, nil // "-3": a value or positional argument
	}
	multi := func() error {
		return Usagef("single-dash multi-letter flag %s: use the --long-name spelling (one-letter flags take one dash, long ones two)", a)
	}
	for j := 1; j < len(a); j++ {
		f := fs.ShorthandLookup(a[j : j+1])
		if f == nil {
			if len(a) == 2 {
				return false, nil // pflag names the unknown shorthand
			}
			return false, multi()
		}
		if !takesValue(f) {
			continue
		}
		rest := a[j+1:]
		if rest == "" {
			return true, nil
		}
		if numeric(f) && rest[0] != '=' && !strings.ContainsRune("0123456789+-.", rune(rest[0])) {
			return false, multi()
		}
		return false, nil
	}
	return false, nil
}

func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

func numeric(f *pflag.Flag) bool {
	switch t := f.Value.Type(); {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"), t == "duration":
		return true
	}
	return false
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// Alias makes each alias another long name of the flag name on fs (as
// llama.cpp's --ctx-size is --ctx here) and lists the aliases in the
// flag's help. The alias resolves to the same flag, so Changed(name) is
// true whichever spelling was used.
func Alias(fs *pflag.FlagSet, name string, aliases ...string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("cli.Alias: no flag --" + name)
	}
	to := map[string]string{}
	for _, a := range aliases {
		if fs.Lookup(a) != nil {
			panic("cli.Alias: --" + a + " is already a flag")
		}
		to[a] = name
	}
	prev := fs.GetNormalizeFunc()
	fs.SetNormalizeFunc(func(fs *pflag.FlagSet, n string) pflag.NormalizedName {
		if t, ok := to[n]; ok {
			n = t
		}
		return prev(fs, n)
	})
	f.Usage += fmt.Sprintf(" (also --%s)", strings.Join(aliases, ", --"))
}
