package experts

import "time"

// Stats are a Store's counters since it opened. The residency fields
// are zero without a pager.
type Stats struct {
	// Budget and what the pager holds against it (its books: pages the
	// kernel reclaimed behind its back still count; Store.ResidentBytes
	// asks the kernel).
	Budget            int64
	ResidentBytes     int64
	PeakResidentBytes int64
	ResidentExperts   int
	PinnedBytes       int64
	ExpertBytes       int64 // all held experts' bytes
	Policy            Policy
	Evict             Evict

	// Hits and Misses count expert uses (one per expert per Forward)
	// found resident or not; the bytes are those experts' sizes.
	Hits, Misses        uint64
	HitBytes, MissBytes int64

	// The next-layer prediction: Predicted experts over all predictions,
	// PredictedUsed of them used by the layer they were predicted for,
	// PredictNeeded the experts those layers used. Precision is
	// PredictedUsed/Predicted, recall PredictedUsed/PredictNeeded.
	// PrefetchIssued counts predicted experts that were not resident
	// (WILLNEED issued, PrefetchBytes), PrefetchHits the uses they served.
	// PredictTime is the time spent computing predictions.
	Predicted, PredictedUsed, PredictNeeded uint64
	PredictTime                             time.Duration
	PrefetchIssued, PrefetchHits            uint64
	PrefetchBytes                           int64

	Evictions    uint64
	EvictedBytes int64
	AdviseTime   time.Duration // in madvise/fadvise calls

	// ReadBytes is what this process read from storage since the store
	// opened (/proc/self/io read_bytes: everything, not only experts;
	// -1 when unavailable).
	ReadBytes int64
	// Forwards counts Forward calls, Rows their rows; ForwardTime is the
	// time spent in them.
	Forwards, Rows uint64
	ForwardTime    time.Duration
}

// HitRate returns Hits / (Hits + Misses), or 0.
func (s *Stats) HitRate() float64 { return ratio(s.Hits, s.Hits+s.Misses) }

// PredictPrecision returns the share of predicted experts that were used.
func (s *Stats) PredictPrecision() float64 { return ratio(s.PredictedUsed, s.Predicted) }

// PredictRecall returns the share of used experts that were predicted.
func (s *Stats) PredictRecall() float64 { return ratio(s.PredictedUsed, s.PredictNeeded) }

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
