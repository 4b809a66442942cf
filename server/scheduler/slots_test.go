package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/inference-x/inference-x/model"
)

// gateObserver holds the scheduler's goroutine in its first Step until
// released, so the test reads the slots while a sequence is in one.
type gateObserver struct {
	nopObserver
	stepped, release chan struct{}
}

func (g *gateObserver) Step(int, int, int, time.Duration) {
	if g.stepped != nil {
		close(g.stepped)
		g.stepped = nil
		<-g.release
	}
}

func TestSlots(t *testing.T) {
	m := openStories(t, "stories260K.gguf")
	g := &gateObserver{stepped: make(chan struct{}), release: make(chan struct{})}
	stepped := g.stepped
	s, err := New(m, Config{Slots: 3, Ctx: 64, KV: model.KVF32, MaxBatch: 16, Queue: 1, Threads: 1}, WithObserver(g))
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range s.Slots() {
		if st != (SlotState{ID: i}) {
			t.Errorf("before any request: slot %d %+v", i, st)
		}
	}
	start(t, s)
	st, err := s.Submit(context.Background(), &Request{Prompt: []int32{1, 2, 3, 4, 5}, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	<-stepped
	got := s.Slots()
	close(g.release)
	if len(got) != 3 || got[0] != (SlotState{ID: 0, Busy: true, PromptTokens: 5}) || got[1].Busy || got[2].Busy {
		t.Errorf("during the request: %+v", got)
	}
	if _, ev := collect(t, st); ev.Reason != FinishLength {
		t.Fatalf("end %+v", ev)
	}
	for i, sl := range s.Slots() {
		if sl.Busy {
			t.Errorf("after the request: slot %d %+v", i, sl)
		}
	}
}
