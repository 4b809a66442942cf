package router

import (
	"errors"
	"fmt"
	"strings"

	"github.com/inference-x/inference-x/internal/bytesize"
)

// ErrCapacity is wrapped when the nodes lack the room (their capacity)
// or the experts (shard files) to give every expert its replicas, or when
// an operation would put a node over its capacity.
var ErrCapacity = errors.New("router: not enough room")

// Shortfall returns nil when every (layer, expert) pair has its wanted
// replicas; otherwise an error wrapping ErrCapacity naming what is
// missing and each node's planned bytes against its capacity. The plan
// never puts a node over its capacity: what does not fit stays short.
func (p *Plan) Shortfall() error {
	if p.UnderReplicated == 0 {
		return nil
	}
	var nodes []string
	for _, n := range p.Nodes {
		c := "no limit"
		if n.Capacity > 0 {
			c = bytesize.Format(n.Capacity)
		}
		nodes = append(nodes, fmt.Sprintf("%s %s of %s", n.ID, bytesize.Format(n.Bytes), c))
	}
	return fmt.Errorf("%w: %d (layer, expert) pairs have fewer than %d replicas (%d have none), %s short; nodes (planned of capacity): %s",
		ErrCapacity, p.UnderReplicated, p.Replicas, p.Unplaced, bytesize.Format(p.MissingBytes), strings.Join(nodes, ", "))
}

// checkRoom returns an error wrapping ErrCapacity when adding bytes to a
// node holding held bytes would exceed its capacity (0: no limit).
func checkRoom(id string, capacity, held, bytes int64) error {
	if capacity > 0 && held+bytes > capacity {
		return fmt.Errorf("%w: node %s holds %s of its %s capacity; %s more does not fit (%s short)",
			ErrCapacity, id, bytesize.Format(held), bytesize.Format(capacity), bytesize.Format(bytes), bytesize.Format(held+bytes-capacity))
	}
	return nil
}
