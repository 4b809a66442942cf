package experttest

import (
	"testing"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/router"
)

// ModelNode is one of StartModelNodes' nodes.
type ModelNode struct {
	Name  string // "a", "b", ...
	Set   router.Set
	Node  *Node
	Proxy *Proxy // the address to route to; Kill cuts the node off
}

// StartModelNodes serves the routed experts of the model in f on n
// in-process nodes (names "a", "b", ...), each behind a proxy, every
// expert on replication of them: the experts are cut into n parts and
// node i holds parts i .. i+replication-1 (mod n), in every MoE layer.
func StartModelNodes(t testing.TB, f *gguf.File, info router.ModelInfo, n, replication int) []ModelNode {
	t.Helper()
	var out []ModelNode
	for i := range n {
		var s router.Set
		for j := range replication {
			part := (i + j) % n
			s.AddRange(part*info.Experts/n, (part+1)*info.Experts/n-1)
		}
		local, err := experts.NewLocal(f, experts.LocalConfig{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(local.Close)
		cfg := expertnode.DefaultConfig()
		name := string(rune('a' + i))
		cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = name, info, local
		cfg.Service.Holdings = router.Uniform(s, info.MoELayers)
		node := StartNode(t, cfg)
		out = append(out, ModelNode{Name: name, Set: s, Node: node, Proxy: StartProxy(t, node.Addr)})
	}
	return out
}
