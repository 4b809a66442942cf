package scheduler

import "sync/atomic"

// SlotState is one slot's occupancy, for the /slots endpoint.
type SlotState struct {
	ID int
	// Busy: a sequence holds the slot.
	Busy bool
	// PromptTokens is the prompt length of the sequence holding the slot
	// (0 when idle).
	PromptTokens int
}

// slotInfo is what Slots reads from other goroutines: written by the
// scheduler's goroutine at admission and at the end of a sequence.
type slotInfo struct {
	prompt atomic.Int64 // prompt tokens of the sequence; -1: idle
}

// Slots returns every slot's state; safe for concurrent use (a snapshot
// that may be a step behind the loop).
func (s *Scheduler) Slots() []SlotState {
	out := make([]SlotState, len(s.info))
	for i := range s.info {
		p := s.info[i].prompt.Load()
		out[i] = SlotState{ID: i, Busy: p >= 0, PromptTokens: int(max(p, 0))}
	}
	return out
}

func newSlotInfo(n int) []slotInfo {
	info := make([]slotInfo, n)
	for i := range info {
		info[i].prompt.Store(-1)
	}
	return info
}
