package expertnode

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/inference-x/inference-x/internal/bytesize"
	"github.com/inference-x/inference-x/internal/rpc"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// ErrTooLarge: the call would cost more than the node's bounds (its
// response over the send limit, too many expert uses); the caller should
// split it.
var ErrTooLarge = errors.New("expertnode: call too large")

// sumsOverhead bounds the protobuf framing of a ForwardResponse around
// its sums (a tag and a length).
const sumsOverhead = 16

// checkCost refuses, before anything is computed or allocated, a call
// whose response would exceed the send limit or whose expert uses (the
// experts of every row) exceed MaxExperts. It reads only the counts; the
// rest of the call is checked by validate.
func (s *Service) checkCost(req *ixv1.ForwardRequest) error {
	groups, uses := 0, 0
	for _, r := range req.GetRows() {
		uses += len(r.GetExperts())
		groups += max(len(r.GetGroupSizes()), 1)
	}
	if lim := s.cfg.maxExperts(); uses > lim {
		return fmt.Errorf("%w: %d expert uses (rows × their experts) over the node's limit of %d: split the call", ErrTooLarge, uses, lim)
	}
	per := int64(s.cfg.Model.Embd) * 4 // one group's sum: Embd float32
	want := int64(groups)*per + sumsOverhead
	if lim := int64(s.cfg.maxResponse()); want > lim {
		return fmt.Errorf("%w: the response would be %s (%d groups × %d values × 4 bytes), over the node's %s send limit: "+
			"split the call: at most %d groups (a row with no group sizes is one group) per call", ErrTooLarge,
			bytesize.Format(want), groups, s.cfg.Model.Embd, bytesize.Format(lim), (lim-sumsOverhead)/per)
	}
	return nil
}

// maxExperts is MaxExperts or its default.
func (c *ServiceConfig) maxExperts() int {
	if c.MaxExperts > 0 {
		return c.MaxExperts
	}
	return DefaultMaxExperts
}

// maxResponse is MaxResponseBytes or its default.
func (c *ServiceConfig) maxResponse() int {
	if c.MaxResponseBytes > 0 {
		return c.MaxResponseBytes
	}
	return rpc.DefaultMaxMessageBytes
}

// reclaimBytes is the request size from which a Forward call's memory is
// given back to the OS after it ends (reclaimer): Go's heap keeps what a
// burst of large calls took otherwise, and the node's RSS stays there.
const reclaimBytes = 8 << 20

// reclaimDelay is how long the reclaimer waits after a large call for
// the others of a burst to end, so one collection covers them all.
var reclaimDelay = time.Second

// reclaimer returns the heap's free memory to the OS once after a burst
// of large calls: two collections (the second empties the sync.Pools
// gRPC's receive buffers sit in) and debug.FreeOSMemory. At most one is
// scheduled at a time.
type reclaimer struct {
	scheduled atomic.Bool
	runs      atomic.Int64
}

func (r *reclaimer) schedule() {
	if !r.scheduled.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(reclaimDelay, func() {
		r.scheduled.Store(false)
		runtime.GC()
		debug.FreeOSMemory()
		r.runs.Add(1)
	})
}

// reclaimAfter schedules the reclaimer when req is large; call it
// deferred, so it runs once the call no longer holds req.
func (s *Service) reclaimAfter(req *ixv1.ForwardRequest) {
	n := 0
	for _, r := range req.GetRows() {
		n += len(r.GetActivation())
	}
	if n >= reclaimBytes {
		s.reclaim.schedule()
	}
}

// Reclaims returns how many times the memory of large calls was given
// back to the OS.
func (s *Service) Reclaims() int { return int(s.reclaim.runs.Load()) }
