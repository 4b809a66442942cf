package adaptive

import (
	"math"
	"testing"
)

func TestComputeScore(t *testing.T) {
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	// 8 distinct tokens, vocabulary 32000, R 1024: H = 3 bits of 10.
	s := ComputeScore([]int32{1, 2, 3, 4, 5, 6, 7, 8}, 32000, 1024, nil)
	if !near(s.Entropy, 3) || !near(s.MaxBits, 10) || !near(s.TTR, 1) || !near(s.Value, 0.3) {
		t.Errorf("8 distinct: %+v, want H 3, Hmax 10, TTR 1, score 0.3", s)
	}
	// The ignored id does not count.
	if s2 := ComputeScore([]int32{0, 1, 2, 3, 4, 5, 6, 7, 8}, 32000, 1024, []int32{0}); s2 != s {
		t.Errorf("ignoring BOS: %+v, want %+v", s2, s)
	}
	// One id repeated: no entropy, score 0.
	if s := ComputeScore([]int32{5, 5, 5, 5}, 32000, 0, nil); s.Value != 0 || s.Entropy != 0 || s.Types != 1 {
		t.Errorf("repeated id: %+v", s)
	}
	// a a b b: H 1 bit, TTR 0.5; vocabulary 4 caps Hmax at 2 bits.
	s = ComputeScore([]int32{0, 0, 1, 1}, 4, 1024, nil)
	if !near(s.Value, 0.5*(1+0.5)/2) {
		t.Errorf("a a b b: %+v, want score 0.375", s)
	}
	// 1024 distinct ids of a large vocabulary: the top of the scale.
	ids := make([]int32, 1024)
	for i := range ids {
		ids[i] = int32(i)
	}
	if s := ComputeScore(ids, 1<<17, 1024, nil); !near(s.Value, 1) {
		t.Errorf("1024 distinct: %+v, want 1", s)
	}
	if s := ComputeScore(nil, 100, 0, nil); s.Value != 0 || s.Tokens != 0 {
		t.Errorf("empty: %+v", s)
	}
	// The type/token ratio is a 64-token moving average: a long text of
	// 100 distinct ids cycling keeps a ratio of 1 (every window holds 64
	// distinct ids), a short cycle of 8 ids has 8/64.
	long := make([]int32, 1000)
	short := make([]int32, 1000)
	for i := range long {
		long[i], short[i] = int32(i%100), int32(i%8)
	}
	if s := ComputeScore(long, 32000, 1024, nil); !near(s.TTR, 1) || s.Types != 100 {
		t.Errorf("100 ids cycling: %+v, want TTR 1", s)
	}
	if s := ComputeScore(short, 32000, 1024, nil); !near(s.TTR, 8.0/64) || !near(s.Value, 0.3*(1+0.125)/2) {
		t.Errorf("8 ids cycling: %+v, want TTR 0.125, score 0.16875", s)
	}
	if got := movingTTR([]int32{1, 1, 2, 2}, 2); !near(got, (1.0+2+1)/3/2) {
		t.Errorf("movingTTR window 2: %v", got)
	}
}

func TestTiersAndBands(t *testing.T) {
	c := DefaultConfig()
	for _, tc := range []struct {
		score float64
		want  Tier
	}{{0, Simple}, {0.299, Simple}, {0.3, Moderate}, {0.6, Moderate}, {0.61, Complex}, {1, Complex}} {
		if got := c.TierOf(tc.score); got != tc.want {
			t.Errorf("score %v: %v, want %v", tc.score, got, tc.want)
		}
	}
	for _, tc := range []struct {
		n    int
		want []Band
	}{
		{1, []Band{Middle}},
		{2, []Band{Early, Late}},
		{4, []Band{Early, Middle, Middle, Late}},
		{5, []Band{Early, Early, Middle, Late, Late}},
		{6, []Band{Early, Early, Middle, Middle, Late, Late}},
	} {
		for l, b := range tc.want {
			if got := c.BandOf(l, tc.n); got != b {
				t.Errorf("%d layers, layer %d: %v, want %v", tc.n, l, got, b)
			}
		}
	}
}

func TestParsePlans(t *testing.T) {
	c := DefaultConfig()
	if got, want := c.PlansString(), "simple=Q2_K,Q4_K,base;moderate=Q4_K,base,base;complex=base,base,base"; got != want {
		t.Errorf("default plans %q, want %q", got, want)
	}
	if err := c.ParsePlans("moderate=q5_k,Q8_0,base"); err != nil {
		t.Fatal(err)
	}
	if got := c.Plans[Moderate].String(); got != "Q5_K,Q8_0,base" {
		t.Errorf("moderate plan %s", got)
	}
	for _, bad := range []string{"simple=Q2_K,Q4_K", "easy=base,base,base", "simple=Q9_K,base,base", "simple=IQ2_XXS,base,base", "simple"} {
		if err := c.ParsePlans(bad); err == nil {
			t.Errorf("ParsePlans(%q) accepted", bad)
		}
	}
	if err := c.ParseThresholds("0.2,0.7"); err != nil || c.SimpleBelow != 0.2 || c.ComplexAbove != 0.7 {
		t.Errorf("thresholds: %v %+v", err, c)
	}
	c.SimpleBelow = 0.8
	if err := c.Validate(); err == nil {
		t.Error("simple threshold above complex accepted")
	}
}
