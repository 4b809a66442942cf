package main

import (
	"strings"
	"testing"
)

// TestSizeFlags: --capacity and --expert-mem take Kubernetes quantities
// (the 28Gi and 12Gi), decimal G, and today's GiB spellings; a bad
// one is refused naming the flag.
func TestSizeFlags(t *testing.T) {
	for in, want := range map[string]int64{"28Gi": 28 << 30, "340GiB": 340 << 30, "2G": 2e9, "0": 0, "100": 100} {
		c := &ClusterFlags{Capacity: in}
		if err := c.Complete(); err != nil || c.capacity != want {
			t.Errorf("--capacity %s: %d, %v; want %d", in, c.capacity, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1Gi", "800m", "12g"} {
		c := &ClusterFlags{Capacity: bad}
		if err := c.Complete(); err == nil || !strings.Contains(err.Error(), "--capacity") || !strings.Contains(err.Error(), "invalid size") {
			t.Errorf("--capacity %q: %v", bad, err)
		}
	}
	cfg, err := (&ServeOptions{ExpertMem: "12Gi"}).pager()
	if err != nil || cfg == nil || cfg.Budget != 12<<30 {
		t.Errorf("--expert-mem 12Gi: %+v, %v", cfg, err)
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
