package gguf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Metadata keys of shard files: the parts `ixctl split` cuts a MoE model
// into, so each box of a cluster stores only what it runs.
const (
	// KeyShardRole is "coordinator" or "expert".
	KeyShardRole = "ix.shard.role"
	// KeyShardNode is the node an expert shard is for.
	KeyShardNode = "ix.shard.node"
	// KeyShardFingerprint is the whole model's router fingerprint: shards
	// of one model agree on it though their tensors differ.
	KeyShardFingerprint = "ix.shard.fingerprint"
	// KeyShardExpertsPrefix + layer is the uint32 array of the global
	// expert ids an expert shard holds in that layer, in the order of its
	// routed expert tensors' third dimension. A layer without the key
	// holds no experts (its expert tensors, when present, have a third
	// dimension of 0: a coordinator shard keeps them so their types and
	// shapes are known).
	KeyShardExpertsPrefix = "ix.shard.experts."
	// KeyShardHashPrefix + tensor name is the uint8 array of the SHA-256
	// digests of each expert's slice of that routed expert tensor of the
	// whole model (experts*32 bytes), in every shard: the model's
	// fingerprint covers them, so a node whose weights differ is refused.
	KeyShardHashPrefix = "ix.shard.sha256."
)

// Shard roles.
const (
	ShardCoordinator = "coordinator"
	ShardExpert      = "expert"
)

// ErrShard is wrapped by errors about shard metadata.
var ErrShard = errors.New("gguf: bad shard metadata")

// ShardInfo describes a shard file: which part of a model it is and
// which routed experts it holds.
type ShardInfo struct {
	Role        string
	Node        string
	Fingerprint string
	// Experts[l] lists the global ids of the experts held in layer l, in
	// tensor order; layers without experts are absent.
	Experts map[int][]int
}

// Shard reads f's shard metadata: nil without an error for a whole
// model. Expert ids are checked to be distinct and below total, the
// model's experts per layer.
func (f *File) Shard(total int) (*ShardInfo, error) {
	if !f.Has(KeyShardRole) {
		return nil, nil
	}
	role, err := f.String(KeyShardRole)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrShard, err)
	}
	if role != ShardCoordinator && role != ShardExpert {
		return nil, fmt.Errorf("%w: %s is %q (want %q or %q)", ErrShard, KeyShardRole, role, ShardCoordinator, ShardExpert)
	}
	s := &ShardInfo{Role: role, Experts: map[int][]int{}}
	if f.Has(KeyShardNode) {
		if s.Node, err = f.String(KeyShardNode); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrShard, err)
		}
	}
	if s.Fingerprint, err = f.String(KeyShardFingerprint); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrShard, err)
	}
	for _, kv := range f.KV {
		rest, ok := strings.CutPrefix(kv.Key, KeyShardExpertsPrefix)
		if !ok {
			continue
		}
		l, err := strconv.Atoi(rest)
		if err != nil || l < 0 {
			return nil, fmt.Errorf("%w: key %s does not name a layer", ErrShard, kv.Key)
		}
		ids, err := f.Ints(kv.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrShard, err)
		}
		if role == ShardCoordinator && len(ids) > 0 {
			return nil, fmt.Errorf("%w: a coordinator shard lists experts of layer %d", ErrShard, l)
		}
		seen := make(map[int64]bool, len(ids))
		out := make([]int, len(ids))
		for i, e := range ids {
			if e < 0 || e >= int64(total) || seen[e] {
				return nil, fmt.Errorf("%w: %s: expert %d repeated or out of range (the model has %d)", ErrShard, kv.Key, e, total)
			}
			seen[e], out[i] = true, int(e)
		}
		if len(out) > 0 {
			s.Experts[l] = out
		}
	}
	return s, nil
}

// ExpertsIn returns the number of experts layer l's routed expert tensors
// hold in a file with shard info s: total for a whole model (s nil).
func (s *ShardInfo) ExpertsIn(l, total int) int {
	if s == nil {
		return total
	}
	return len(s.Experts[l])
}
