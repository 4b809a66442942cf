package server

import "testing"

// TestFixedSeed: with FixedSeed (serve --seed) a request without "seed"
// samples with the configured seed; without it, each gets a random one;
// a request's own seed always wins.
func TestFixedSeed(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ModelID, cfg.Sampler.Seed, cfg.FixedSeed = "m", 42, true
	s := &Server{cfg: cfg}
	for range 3 {
		if p, err := s.params(&samplingFields{}); err != nil || p.sampler.Seed != 42 {
			t.Fatalf("fixed seed: %v %d", err, p.sampler.Seed)
		}
	}
	own := int64(7)
	if p, _ := s.params(&samplingFields{Seed: &own}); p.sampler.Seed != 7 {
		t.Fatalf("request seed: %d", p.sampler.Seed)
	}
	s.cfg.FixedSeed = false
	a, _ := s.params(&samplingFields{})
	b, _ := s.params(&samplingFields{})
	if a.sampler.Seed == 42 && b.sampler.Seed == 42 || a.sampler.Seed == b.sampler.Seed {
		t.Fatalf("random seeds: %d %d", a.sampler.Seed, b.sampler.Seed)
	}
}
