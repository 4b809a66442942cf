package expertnode

import (
	"errors"
	"fmt"

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
