package main

import (
	"testing"

	"github.com/inference-x/inference-x/internal/buildinfo"
)

func TestVersion(t *testing.T) {
	want := "ixctl " + buildinfo.Get().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if code, out, errs := run(t, args...); code != 0 || out != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errs, want)
		}
	}
}
