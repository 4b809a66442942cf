package shard

import (
	"errors"
	"fmt"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/router"
)

// ErrNoExperts is wrapped when a file without routed expert weights (a
// coordinator shard) is asked to compute experts.
var ErrNoExperts = errors.New("shard: the file holds no expert weights")

// Node is an expert node's model file, opened: the whole model or the
// node's shard.
type Node struct {
	File *gguf.File
	// Info is the whole model's expert layout (a shard's has the model's
	// fingerprint).
	Info router.ModelInfo
	// Shard is the file's shard metadata; nil for a whole model.
	Shard *gguf.ShardInfo
	// Available is every expert the file can serve: a shard's experts,
	// nil for a whole model (any expert).
	Available router.Holdings
	// Executor computes the file's experts, named by global ids.
	Executor experts.Backend

	local *experts.Local
}

// NodeConfig configures OpenNode.
type NodeConfig struct {
	// Threads for expert compute (0: one per CPU).
	Threads int
	// Pager, when set, keeps the node's resident expert bytes under a
	// budget (experts.PagerConfig); nil maps the experts plainly.
	Pager *experts.PagerConfig
}

// OpenNode opens path for an expert node. A coordinator shard is refused
// (it has no expert weights) with an error wrapping ErrNoExperts.
func OpenNode(path string, cfg NodeConfig) (*Node, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	n, err := newNode(f, cfg)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

func newNode(f *gguf.File, cfg NodeConfig) (*Node, error) {
	info, err := router.InfoFromFile(f)
	if err != nil {
		return nil, err
	}
	sh, err := f.Shard(info.Experts)
	if err != nil {
		return nil, err
	}
	if sh != nil && sh.Role == gguf.ShardCoordinator {
		return nil, fmt.Errorf("%w: it is the coordinator's shard; give an expert node its own shard (NODE.gguf) or the whole model", ErrNoExperts)
	}
	if sh != nil {
		if info.Hashing, err = verify(f, &info, sh); err != nil {
			return nil, err
		}
	}
	local, err := experts.NewLocal(f, experts.LocalConfig{Threads: cfg.Threads, Pager: cfg.Pager})
	if err != nil {
		return nil, err
	}
	n := &Node{File: f, Info: info, Shard: sh, Executor: local, local: local}
	if sh != nil {
		n.Available = router.Holdings{}
		for l, ids := range sh.Experts {
			s := &router.Set{}
			for _, e := range ids {
				s.Add(e)
			}
			n.Available[l] = s
		}
		n.Executor = NewRemap(local, sh, info.Layers, info.Experts)
	}
	return n, nil
}

// Stats returns the counters of the node's expert store (the pager's
// when it has one; see experts.Store.Stats).
func (n *Node) Stats() experts.Stats { return n.local.Stats() }

// Holdings returns the experts to hold at start for spec ("all", "" or
// ranges such as 0-127,256-383, held in every MoE layer): for a shard,
// "all" and "" mean the shard's experts and other specs must be within
// them (an error wrapping ErrNotInShard names the first that is not).
func (n *Node) Holdings(spec string) (router.Holdings, error) {
	if n.Available != nil && (spec == "" || spec == "all") {
		h := router.Holdings{}
		for l, s := range n.Available {
			c := s.Clone()
			h[l] = &c
		}
		return h, nil
	}
	if spec == "" {
		spec = "all"
	}
	set, err := router.ParseSet(spec, n.Info.Experts)
	if err != nil {
		return nil, err
	}
	h := router.Uniform(set, n.Info.MoELayers)
	return h, n.CheckHoldings(h)
}

// ErrNotInShard is wrapped when experts are asked of a shard that does not
// hold them.
var ErrNotInShard = errors.New("shard: expert not in this shard")

// CheckHoldings checks that the file can serve h.
func (n *Node) CheckHoldings(h router.Holdings) error {
	if n.Available == nil {
		return nil
	}
	for l, s := range h {
		for _, r := range s.Ranges() {
			for e := r[0]; e <= r[1]; e++ {
				if !n.Available.Has(l, e) {
					have := "none"
					if a := n.Available[l]; a != nil && a.Len() > 0 {
						have = a.String()
					}
					return fmt.Errorf("%w: layer %d expert %d (the %s shard has %s of layer %d)", ErrNotInShard, l, e, n.Shard.Node, have, l)
				}
			}
		}
	}
	return nil
}

// Close releases the backend and unmaps the file.
func (n *Node) Close() error {
	n.local.Close()
	return n.File.Close()
}

// CheckCoordinator returns an error wrapping ErrNoExperts when f has no
// expert weights (a coordinator shard) and remote is false: such a file
// runs only with its experts on expert nodes. It returns whether f has
// the expert weights (false for any shard).
func CheckCoordinator(f *gguf.File, remote bool) (hasExperts bool, err error) {
	if !f.Has(gguf.KeyShardRole) {
		return true, nil
	}
	if !remote {
		return false, fmt.Errorf("%w: it is a shard written by ixctl split; run it with expert nodes (--nodes, --placement or --gossip) and --local-experts=false", ErrNoExperts)
	}
	return false, nil
}
