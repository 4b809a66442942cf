package shard_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/experttest"
	"github.com/inference-x/inference-x/model"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/shard"
	"github.com/inference-x/inference-x/synth"
)

// kimiMini writes the kimi-k2-mini preset (MLA, sigmoid routing with
// bias, a shared expert, a leading dense layer) reduced to 3 layers of
// width 128 with 32 experts (top 8) of width 32.
func kimiMini(t testing.TB, dir string) string {
	t.Helper()
	c, err := synth.Preset("kimi-k2-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.ExpertFF, c.Vocab, c.Experts = 3, 256, 256, 2, 32, 512, 32
	c.QLoraRank, c.KVLoraRank, c.RopeDim, c.NopeDim, c.VHeadDim = 64, 64, 32, 32, 32
	p := filepath.Join(dir, "kimi.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q4_K_M", Seed: 3}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// split cuts path for nodes a, b, c with replication 2: node n holds
// thirds n and n+1 of every layer's experts.
func split(t testing.TB, path, out string, experts int) *shard.Manifest {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pf router.PlacementFile
	for n := range 3 {
		var s router.Set
		for j := range 2 {
			part := (n + j) % 3
			s.AddRange(part*experts/3, (part+1)*experts/3-1)
		}
		pf.Nodes = append(pf.Nodes, router.PlacementNode{Name: string(rune('a' + n)), Experts: s.String()})
	}
	man, err := shard.Split(context.Background(), f, shard.SplitConfig{Placement: &pf, Out: out, Model: "kimi.gguf"})
	if err != nil {
		t.Fatal(err)
	}
	return man
}

// startShardNode serves a node's shard file in-process as cmd/expertnode
// does: holding the shard's experts ("" spec), or none (to be placed).
func startShardNode(t testing.TB, path string, empty bool) (*experttest.Node, *shard.Node) {
	t.Helper()
	n, err := shard.OpenNode(path, shard.NodeConfig{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	held := router.Holdings{}
	if !empty {
		if held, err = n.Holdings(""); err != nil {
			t.Fatal(err)
		}
	}
	cfg := expertnode.DefaultConfig()
	cfg.Service.NodeID, cfg.Service.Model, cfg.Service.Executor = n.Shard.Node, n.Info, n.Executor
	cfg.Service.Holdings, cfg.Service.Available = held, n.Available
	return experttest.StartNode(t, cfg), n
}

// logits evaluates prompt as one batch, then greedy tokens one at a time,
// and returns every logits row.
func logits(t testing.TB, m *model.Model, be experts.Backend, prompt []int32, n int) [][]float32 {
	t.Helper()
	r := m.NewRunner(model.Options{Threads: 2, MaxBatch: len(prompt), Experts: be})
	defer r.Close()
	seq, err := m.NewSequence(64, model.KVF32)
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]float32
	keep := func(_ int, l []float32) error {
		rows = append(rows, append([]float32(nil), l...))
		return nil
	}
	ctx := context.Background()
	if err := r.Eval(ctx, seq, prompt, true, keep); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		last := rows[len(rows)-1]
		best := 0
		for v := range last {
			if last[v] > last[best] {
				best = v
			}
		}
		if err := r.Eval(ctx, seq, []int32{int32(best)}, false, keep); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	return rows
}

func sameBits(t *testing.T, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d logits rows, want %d", len(got), len(want))
	}
	for i := range want {
		for v := range want[i] {
			if math.Float32bits(got[i][v]) != math.Float32bits(want[i][v]) {
				t.Fatalf("row %d logit %d: split cluster %v, single node %v", i, v, got[i][v], want[i][v])
			}
		}
	}
}

// TestSplitCluster splits a Kimi-K2-shaped model for three nodes with
// replication 2, serves each node's shard file, runs the coordinator on
// the coordinator file (no expert weights) and checks its logits against
// single-node mode on the whole file, bit for bit: with placement from
// the nodes' Status (static wiring), and with placement planned by the
// rebalancing Manager from nodes that start empty and may hold only their
// shard's experts.
func TestSplitCluster(t *testing.T) {
	dir := t.TempDir()
	path := kimiMini(t, dir)
	whole, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	wm, err := model.Load(whole)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "shards")
	man := split(t, path, out, wm.Config.Experts)
	prompt := make([]int32, 10)
	for i := range prompt {
		prompt[i] = int32((i*37 + 5) % wm.Config.Vocab)
	}
	want := logits(t, wm, nil, prompt, 6)

	cf, err := gguf.Open(filepath.Join(out, shard.CoordinatorFile))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	cm, err := model.Load(cf)
	if err != nil {
		t.Fatalf("loading the coordinator file: %v", err)
	}
	info, err := router.InfoFromFile(cf)
	if err != nil {
		t.Fatal(err)
	}
	if info.Fingerprint != man.Fingerprint {
		t.Fatalf("coordinator file fingerprint %s, manifest %s", info.Fingerprint, man.Fingerprint)
	}
	if _, err := shard.CheckCoordinator(cf, false); !errors.Is(err, shard.ErrNoExperts) {
		t.Fatalf("single-node mode on the coordinator file: %v, want ErrNoExperts", err)
	}
	if _, err := shard.OpenNode(filepath.Join(out, shard.CoordinatorFile), shard.NodeConfig{}); !errors.Is(err, shard.ErrNoExperts) {
		t.Fatalf("expert node on the coordinator file: %v, want ErrNoExperts", err)
	}

	t.Run("static", func(t *testing.T) {
		var specs []router.NodeSpec
		var nodes []*experttest.Node
		for _, mf := range man.Nodes {
			n, sn := startShardNode(t, filepath.Join(out, mf.File), false)
			if sn.Info.Fingerprint != info.Fingerprint {
				t.Fatalf("%s: fingerprint %s, coordinator %s", mf.File, sn.Info.Fingerprint, info.Fingerprint)
			}
			nodes = append(nodes, n)
			specs = append(specs, router.NodeSpec{Name: mf.Node, Addr: n.Addr}) // holdings from Status
		}
		cfg := router.DefaultConfig()
		cfg.Model = info
		r, err := router.New(context.Background(), cfg, specs)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		sameBits(t, logits(t, cm, r, prompt, 6), want)

		// Node a's file has thirds 0 and 1: it refuses the last third,
		// to load and to compute, naming the expert.
		svc := nodes[0].Server.Service()
		last := wm.Config.Experts - 1
		l := info.MoELayers[0]
		_, err = svc.Load(context.Background(), &ixv1.LoadRequest{Experts: []*ixv1.LayerExperts{
			{Layer: uint32(l), Ranges: []*ixv1.ExpertRange{{First: uint32(last), Last: uint32(last)}}}}})
		if !errors.Is(err, expertnode.ErrNotAvailable) || expertnode.Status(err).Code() != codes.FailedPrecondition {
			t.Fatalf("loading expert %d on node a: %v", last, err)
		}
		st, _ := svc.Status(context.Background(), nil)
		avail, _ := router.HoldingsFromProto(st.GetAvailable().GetExperts(), nil)
		if st.GetAvailable() == nil || avail.Has(l, last) || !avail.Has(l, 0) {
			t.Fatalf("node a reports available %v", st.GetAvailable())
		}
		_, err = svc.Forward(context.Background(), &ixv1.ForwardRequest{
			Layer: uint32(l), ActivationType: ixv1.ActivationType_ACTIVATION_TYPE_F32,
			Rows: []*ixv1.ForwardRow{{Activation: make([]byte, 4*info.Embd), Experts: []uint32{uint32(last)}, Weights: []float32{1}}}})
		if !errors.Is(err, expertnode.ErrNotAvailable) || expertnode.Status(err).Code() != codes.FailedPrecondition {
			t.Fatalf("Forward of expert %d on node a: %v", last, err)
		}
		t.Logf("node a refuses expert %d: %v", last, err)
	})

	t.Run("placed", func(t *testing.T) {
		pc := router.PlanConfigFromFile(cf, info)
		pc.Replicas = 2
		rc := router.DefaultConfig()
		rc.Model = info
		mgr, err := router.NewManager(router.ManagerConfig{Router: rc, Plan: pc})
		if err != nil {
			t.Fatal(err)
		}
		defer mgr.Close()
		var members []router.Member
		for _, mf := range man.Nodes {
			n, _ := startShardNode(t, filepath.Join(out, mf.File), true)
			members = append(members, router.Member{ID: mf.Node, Addr: n.Addr})
		}
		if err := mgr.Update(context.Background(), members); err != nil {
			t.Fatal(err)
		}
		st := mgr.Status()
		if st.UnderReplicated != 0 {
			t.Fatalf("%d experts under-replicated", st.UnderReplicated)
		}
		sameBits(t, logits(t, cm, mgr.Backend(), prompt, 6), want)
		t.Logf("placement over shard nodes: %s", fmt.Sprint(st.Nodes))
	})
}

// TestNodePager: an expert node whose pager budget holds a few experts
// computes the same logits, bit for bit, as the model's own experts, and
// really evicts.
func TestNodePager(t *testing.T) {
	path := kimiMini(t, t.TempDir())
	m := experttest.OpenModel(t, path)
	f := m.File
	info, err := router.InfoFromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var perExpert int64 // the largest expert of any layer
	for _, b := range router.PlanConfigFromFile(f, info).ExpertBytes {
		perExpert = max(perExpert, b)
	}
	cfg := experts.DefaultPagerConfig(4 * perExpert)
	cfg.Predict = false
	n, err := shard.OpenNode(path, shard.NodeConfig{Threads: 1, Pager: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	prompt := []int32{5, 42, 79, 116, 153, 190, 227, 264}
	want := logits(t, m, nil, prompt, 6)
	got := logits(t, m, n.Executor, prompt, 6)
	sameBits(t, got, want)
	st, ok := n.Executor.(interface{ Stats() experts.Stats })
	if !ok {
		t.Fatalf("node executor %T has no Stats", n.Executor)
	}
	s := st.Stats()
	if s.Budget != 4*perExpert || s.Evictions == 0 || s.Misses == 0 {
		t.Fatalf("pager stats: budget %d (want %d), %d evictions, %d misses", s.Budget, 4*perExpert, s.Evictions, s.Misses)
	}
}
