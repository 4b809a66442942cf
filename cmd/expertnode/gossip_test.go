package main

import (
	"strings"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "340GiB": 340 << 30, "1.5GiB": 3 << 29, "512MiB": 512 << 20, "2G": 2e9, "100": 100, "7B": 7} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1GiB", "1PiB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestExpertMemFlag(t *testing.T) {
	o := &ServeOptions{ExpertMem: "48GiB"}
	cfg, err := o.pager()
	if err != nil || cfg == nil || cfg.Budget != 48<<30 || cfg.Predict {
		t.Fatalf("--expert-mem 48GiB: %+v, %v", cfg, err)
	}
	if cfg, err := (&ServeOptions{}).pager(); cfg != nil || err != nil {
		t.Errorf("no --expert-mem: %+v, %v (want plain mmap)", cfg, err)
	}
	for _, bad := range []string{"lots", "0", "-1GiB"} {
		if _, err := (&ServeOptions{ExpertMem: bad}).pager(); err == nil || !strings.Contains(err.Error(), "--expert-mem") {
			t.Errorf("--expert-mem %q: %v", bad, err)
		}
	}
}
