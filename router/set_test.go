package router

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseSet(t *testing.T) {
	for _, tc := range []struct {
		spec, want string
		err        bool
	}{
		{spec: "all", want: "0-383"},
		{spec: "0-127,256-383", want: "0-127,256-383"},
		{spec: " 5 , 1-3,2", want: "1-3,5"},
		{spec: "383", want: "383"},
		{spec: "384", err: true},
		{spec: "3-1", err: true},
		{spec: "-1", err: true},
		{spec: "a-b", err: true},
		{spec: "", err: true},
		{spec: "1,,2", err: true},
	} {
		s, err := ParseSet(tc.spec, 384)
		if tc.err {
			if !errors.Is(err, ErrSpec) {
				t.Errorf("%q: err = %v, want ErrSpec", tc.spec, err)
			}
			continue
		}
		if err != nil || s.String() != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.spec, s.String(), err, tc.want)
		}
	}
	var s Set
	s.AddRange(60, 70)
	s.Remove(64)
	if s.Len() != 10 || s.Has(64) || !s.Has(70) || s.Max() != 70 || s.String() != "60-63,65-70" {
		t.Errorf("set ops: %s len %d", s.String(), s.Len())
	}
}

func TestPlacementFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(p, []byte(`{"nodes": [
		{"name": "a", "addr": "127.0.0.1:1", "experts": "0-7"},
		{"addr": "127.0.0.1:2", "layers": {"1": "8-15", "2": ""}}]}`), 0o600)
	f, err := ReadPlacementFile(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Node("a")
	if err != nil {
		t.Fatal(err)
	}
	h, err := a.Holdings([]int{1, 2}, 16)
	if err != nil || !h.Has(2, 7) || h.Has(2, 8) {
		t.Fatalf("a: %v %v", h, err)
	}
	b, err := f.Node("127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	h, err = b.Holdings([]int{1, 2}, 16)
	if err != nil || !h.Has(1, 8) || h.Has(2, 8) || h.Has(1, 0) {
		t.Fatalf("b: %v %v", h, err)
	}
	if _, err := b.Holdings([]int{2}, 16); !errors.Is(err, ErrSpec) {
		t.Errorf("layer 1 is not MoE: %v", err)
	}
	os.WriteFile(p, []byte(`{"nodes": [{"name": "a"}, {"name": "a"}]}`), 0o600)
	if _, err := ReadPlacementFile(p); !errors.Is(err, ErrSpec) {
		t.Errorf("duplicate names: %v", err)
	}
	tab := NewTable(3, 16, []Holdings{Uniform(Set{words: []uint64{0xff}}, []int{1, 2}), Uniform(Set{words: []uint64{0xf0}}, []int{1})})
	if r := tab.Replicas(1, 5); len(r) != 2 || r[0] != 0 || r[1] != 1 {
		t.Errorf("replicas of 1/5: %v", r)
	}
	if missing, minRep := tab.Coverage([]int{1}); missing != 8 || minRep != 1 {
		t.Errorf("coverage: %d missing, min %d", missing, minRep)
	}
}
