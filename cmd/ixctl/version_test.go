package main

import (
	"encoding/json"
	"testing"

	"github.com/inference-x/inference-x/internal/buildinfo"
)

// TestVersion: --version, version and version -o json print the build info.
func TestVersion(t *testing.T) {
	want := "ixctl " + buildinfo.Get().String() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if code, out, errs := run(t, args...); code != 0 || out != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errs, want)
		}
	}
	code, out, errs := run(t, "version", "-o", "json")
	var in buildinfo.Info
	if err := json.Unmarshal([]byte(out), &in); code != 0 || err != nil || in != buildinfo.Get() {
		t.Errorf("version -o json: exit %d, %q (%v), stderr %q", code, out, err, errs)
	}
}
