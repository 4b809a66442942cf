package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/bytesize"
)

// planTestConfig is a model of 8 MoE layers (and a dense layer 0) of 64
// experts whose sizes differ by layer, as quantization mixes make them.
func planTestConfig(r int) PlanConfig {
	c := PlanConfig{Experts: 64, ExpertBytes: make([]int64, 9), Replicas: r}
	for l := 1; l < 9; l++ {
		c.ExpertBytes[l] = int64(1000 + 150*(l%3))
	}
	return c
}

func nodesN(n int) []PlanNode {
	var out []PlanNode
	for i := range n {
		out = append(out, PlanNode{ID: fmt.Sprintf("node-%d", i)})
	}
	return out
}

// checkPlan verifies replication, distinct holders and balance within
// tol of each node's fair share.
func checkPlan(t *testing.T, cfg PlanConfig, p *Plan, tol float64) {
	t.Helper()
	var total int64
	for _, l := range cfg.MoELayers() {
		for e := range cfg.Experts {
			n := 0
			for _, s := range p.Nodes {
				if s.Holdings.Has(l, e) {
					n++
				}
			}
			if want := min(cfg.Replicas, len(p.Nodes)); n < want {
				t.Fatalf("layer %d expert %d has %d holders, want %d", l, e, n, want)
			}
			total += int64(n) * cfg.ExpertBytes[l]
		}
	}
	if p.UnderReplicated != 0 || p.Unplaced != 0 {
		t.Fatalf("under-replicated %d, unplaced %d", p.UnderReplicated, p.Unplaced)
	}
	share := float64(total) / float64(len(p.Nodes))
	for _, s := range p.Nodes {
		if d := float64(s.Bytes) - share; d > tol*share || -d > tol*share {
			t.Errorf("node %s holds %d bytes, fair share %.0f (off by %.1f%%)", s.ID, s.Bytes, share, 100*d/share)
		}
	}
}

func TestPlanBalancedAndDeterministic(t *testing.T) {
	for _, r := range []int{1, 2, 3} {
		cfg := planTestConfig(r)
		nodes := nodesN(5)
		p, err := NewPlan(cfg, nodes, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkPlan(t, cfg, p, 0.02)
		rng := rand.New(rand.NewPCG(1, uint64(r)))
		rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		q, err := NewPlan(cfg, nodes, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("R=%d: the plan depends on the order of the nodes", r)
		}
		// Planning again from the plan itself moves nothing.
		again, err := NewPlan(cfg, nodes, p.Holdings())
		if err != nil {
			t.Fatal(err)
		}
		if m := Diff(cfg.ExpertBytes, p.Holdings(), again.Holdings()); m.ExpertsMoved != 0 || m.ExpertsReleased != 0 {
			t.Fatalf("R=%d: re-planning a stable cluster moves %d experts", r, m.ExpertsMoved)
		}
	}
}

// TestPlanNodeLeavesMovesLittle is the movement bound of issue 10: when
// one of N nodes leaves, the bytes moved are at most 1.2x the bytes that
// node held; when it comes back, about its share moves.
func TestPlanNodeLeavesMovesLittle(t *testing.T) {
	for _, tc := range []struct{ n, r int }{{4, 1}, {5, 2}, {8, 2}, {6, 3}} {
		t.Run(fmt.Sprintf("N=%d,R=%d", tc.n, tc.r), func(t *testing.T) {
			cfg := planTestConfig(tc.r)
			nodes := nodesN(tc.n)
			base, err := NewPlan(cfg, nodes, nil)
			if err != nil {
				t.Fatal(err)
			}
			for gone := range tc.n {
				rest := append(append([]PlanNode(nil), nodes[:gone]...), nodes[gone+1:]...)
				after, err := NewPlan(cfg, rest, base.Holdings())
				if err != nil {
					t.Fatal(err)
				}
				checkPlan(t, cfg, after, 0.03)
				cur := base.Holdings()
				held := base.Shard(nodes[gone].ID).Bytes
				delete(cur, nodes[gone].ID)
				m := Diff(cfg.ExpertBytes, cur, after.Holdings())
				t.Logf("%s left: held %d moved %d (%.3fx)", nodes[gone].ID, held, m.BytesMoved, float64(m.BytesMoved)/float64(held))
				if float64(m.BytesMoved) > 1.2*float64(held) {
					t.Errorf("%s left holding %d bytes; %d bytes moved (%.2fx)", nodes[gone].ID, held, m.BytesMoved, float64(m.BytesMoved)/float64(held))
				}
				// The node rejoins (empty): it gets its share back and
				// about that much moves.
				back, err := NewPlan(cfg, nodes, after.Holdings())
				if err != nil {
					t.Fatal(err)
				}
				checkPlan(t, cfg, back, 0.03)
				mb := Diff(cfg.ExpertBytes, after.Holdings(), back.Holdings())
				share := back.Shard(nodes[gone].ID).Bytes
				if float64(mb.BytesMoved) > 1.2*float64(share) {
					t.Errorf("%s joined and got %d bytes; %d bytes moved", nodes[gone].ID, share, mb.BytesMoved)
				}
			}
		})
	}
}

func TestPlanCapacity(t *testing.T) {
	cfg := planTestConfig(1)
	var total int64
	for _, b := range cfg.ExpertBytes {
		total += b * int64(cfg.Experts)
	}
	// One node has half the room of the others: it gets half as much.
	nodes := []PlanNode{{ID: "a", Capacity: total}, {ID: "b", Capacity: total}, {ID: "c", Capacity: total / 2}}
	p, err := NewPlan(cfg, nodes, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, c := p.Shard("a").Bytes, p.Shard("c").Bytes
	if r := float64(c) / float64(a); r < 0.45 || r > 0.55 {
		t.Errorf("node c (half the capacity) holds %d bytes, node a %d: ratio %.2f, want 0.5", c, a, r)
	}
	// A cluster too small for R=2 places what fits and says so.
	cfg.Replicas = 2
	small := []PlanNode{{ID: "a", Capacity: total / 2}, {ID: "b", Capacity: total}}
	p, err = NewPlan(cfg, small, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Shard("a").Bytes > total/2 {
		t.Errorf("node a holds %d bytes over its capacity %d", p.Shard("a").Bytes, total/2)
	}
	if p.UnderReplicated == 0 || p.Unplaced != 0 {
		t.Errorf("under-replicated %d, unplaced %d: want some under-replicated, none unplaced", p.UnderReplicated, p.Unplaced)
	}
	// The shortfall names the missing bytes: R copies of the model less
	// what was placed.
	var placed int64
	for _, sh := range p.Nodes {
		placed += sh.Bytes
	}
	if p.MissingBytes != 2*total-placed {
		t.Errorf("missing %d bytes, want %d", p.MissingBytes, 2*total-placed)
	}
	err = p.Shortfall()
	if !errors.Is(err, ErrCapacity) || !strings.Contains(err.Error(), bytesize.Format(p.MissingBytes)+" short") ||
		!strings.Contains(err.Error(), "a "+bytesize.Format(p.Shard("a").Bytes)+" of "+bytesize.Format(total/2)) {
		t.Errorf("shortfall: %v", err)
	}
	t.Logf("%v", err)

	// Current holdings over a node's capacity (it shrank) are trimmed:
	// no node is ever planned over its capacity.
	cfg.Replicas = 1
	all := Holdings{}
	for l, b := range cfg.ExpertBytes {
		if b > 0 {
			s := &Set{}
			s.AddRange(0, cfg.Experts-1)
			all[l] = s
		}
	}
	shrunk := []PlanNode{{ID: "a", Capacity: total / 4}, {ID: "b", Capacity: total / 4}, {ID: "c", Capacity: total / 4}}
	p, err = NewPlan(cfg, shrunk, map[string]Holdings{"a": all})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range p.Nodes {
		if sh.Bytes > sh.Capacity {
			t.Errorf("node %s planned %d bytes over its capacity %d", sh.ID, sh.Bytes, sh.Capacity)
		}
	}
	if p.Shortfall() == nil {
		t.Error("no shortfall reported for a model larger than the cluster")
	}
}

func TestPlanHostsAndAvailability(t *testing.T) {
	cfg := planTestConfig(2)
	// Two boxes with two NUMA nodes each: the two replicas of an expert
	// are on different boxes.
	nodes := []PlanNode{{ID: "a0", Host: "a"}, {ID: "a1", Host: "a"}, {ID: "b0", Host: "b"}, {ID: "b1", Host: "b"}}
	p, err := NewPlan(cfg, nodes, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, cfg, p, 0.03)
	for _, l := range cfg.MoELayers() {
		for e := range cfg.Experts {
			onA := p.Shard("a0").Holdings.Has(l, e) || p.Shard("a1").Holdings.Has(l, e)
			onB := p.Shard("b0").Holdings.Has(l, e) || p.Shard("b1").Holdings.Has(l, e)
			if !onA || !onB {
				t.Fatalf("layer %d expert %d: both replicas on one host", l, e)
			}
		}
	}
	// A node started from a shard holds only what its file has.
	var low Set
	low.AddRange(0, 15)
	nodes = []PlanNode{{ID: "x", Available: Uniform(low, cfg.MoELayers())}, {ID: "y"}, {ID: "z"}}
	cfg.Replicas = 1
	p, err = NewPlan(cfg, nodes, nil)
	if err != nil {
		t.Fatal(err)
	}
	for l, s := range p.Shard("x").Holdings {
		if s.Max() > 15 {
			t.Fatalf("node x holds layer %d experts %s beyond its shard", l, s)
		}
	}
}

func TestPlanHotExperts(t *testing.T) {
	cfg := planTestConfig(1)
	cfg.Activations = make([]uint64, len(cfg.ExpertBytes)*cfg.Experts)
	cfg.Activations[3*64+7] = 900
	cfg.Activations[5*64+1] = 800
	cfg.Activations[2*64+2] = 10
	cfg.HotExperts, cfg.HotReplicas = 2, 2
	p, err := NewPlan(cfg, nodesN(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	holders := func(l, e int) int {
		n := 0
		for _, s := range p.Nodes {
			if s.Holdings.Has(l, e) {
				n++
			}
		}
		return n
	}
	if holders(3, 7) != 3 || holders(5, 1) != 3 || holders(2, 2) != 1 {
		t.Errorf("holders: hot (3,7) %d, (5,1) %d, warm (2,2) %d; want 3, 3, 1", holders(3, 7), holders(5, 1), holders(2, 2))
	}
}

func TestPlanRejectsBadInput(t *testing.T) {
	cfg := planTestConfig(1)
	if _, err := NewPlan(cfg, []PlanNode{{ID: "a"}, {ID: "a"}}, nil); err == nil {
		t.Error("duplicate node ids accepted")
	}
	cfg.Replicas = 0
	if _, err := NewPlan(cfg, nodesN(2), nil); err == nil {
		t.Error("R = 0 accepted")
	}
}

// BenchmarkPlanKimiK2 plans a Kimi-K2-sized model (60 MoE layers x 384
// experts, R = 2) over 16 nodes.
func BenchmarkPlanKimiK2(b *testing.B) {
	cfg := PlanConfig{Experts: 384, ExpertBytes: make([]int64, 61), Replicas: 2}
	for l := 1; l < 61; l++ {
		cfg.ExpertBytes[l] = 44 << 20
	}
	nodes := nodesN(16)
	base, err := NewPlan(cfg, nodes, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := NewPlan(cfg, nodes[1:], base.Holdings()); err != nil {
			b.Fatal(err)
		}
	}
}
