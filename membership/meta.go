package membership

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// ErrMeta is wrapped when metadata is malformed or too large.
var ErrMeta = errors.New("membership: bad node metadata")

// Roles of cluster members.
const (
	RoleCoordinator = "coordinator"
	RoleExpert      = "expert"
)

// Meta is what a member gossips about itself. It stays small: the expert
// map travels over gRPC, not here.
type Meta struct {
	// Role is RoleCoordinator or RoleExpert.
	Role string `json:"r"`
	// RPC is the member's gRPC address (host:port) that others dial.
	RPC string `json:"a,omitempty"`
	// Host names the machine (several NUMA-bound expert nodes share it).
	Host string `json:"h,omitempty"`
	// Capacity is the bytes of experts the node may hold (0: no limit).
	Capacity int64 `json:"c,omitempty"`
	// Epoch is the node's holdings version; it changes with every Load
	// and Release, so the coordinator refetches holdings when it moves.
	Epoch uint64 `json:"e,omitempty"`
	// Load is the node's Forward calls in flight.
	Load uint32 `json:"l,omitempty"`
	// Draining is set while the node is being emptied or shutting down:
	// placement gives it nothing new.
	Draining bool `json:"d,omitempty"`
	// Leaving is set just before a graceful leave, so others tell it
	// from a failure (memberlist reports both alike).
	Leaving bool `json:"q,omitempty"`
}

// metaLimits bound the string fields so any Meta encodes under
// memberlist.MetaMaxSize.
const (
	maxRPC  = 255
	maxHost = 128
)

// Validate checks the fields.
func (m *Meta) Validate() error {
	switch {
	case m.Role != RoleCoordinator && m.Role != RoleExpert:
		return fmt.Errorf("%w: role %q", ErrMeta, m.Role)
	case len(m.RPC) > maxRPC || len(m.Host) > maxHost:
		return fmt.Errorf("%w: address of %d bytes or host of %d (at most %d and %d)", ErrMeta, len(m.RPC), len(m.Host), maxRPC, maxHost)
	case m.Capacity < 0:
		return fmt.Errorf("%w: capacity %d", ErrMeta, m.Capacity)
	}
	return nil
}

// Encode returns the wire form, failing over memberlist.MetaMaxSize.
func (m *Meta) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMeta, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// DecodeMeta parses metadata received from another member.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > memberlist.MetaMaxSize {
		return m, fmt.Errorf("%w: %d bytes", ErrMeta, len(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrMeta, err)
	}
	return m, m.Validate()
}
