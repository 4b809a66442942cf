package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/kernels"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// localDest is the destination index of the local backend.
const localDest = -2

// call is the state of one Forward: where each expert term goes, the RPC
// chunks, the local groups and where each term's value lands. Calls are
// pooled, so steady-state routing reuses every buffer.
type call struct {
	r     *Router
	ctx   context.Context
	layer int
	b     *experts.Batch
	out   []float32
	t     *Table    // the placement when the call started
	at    gguf.Type // wire activation type
	rb    int       // activation bytes per row on the wire

	term   []termRef // per slot i*K+k: where its value is
	failed []bool    // per node: failed during this call
	f32    []byte    // activations encoded as f32 when b.Q is nil

	chunks []*chunk // every chunk of this call; the first nChunks are in use
	nChunk int
	sent   int      // chunks [0, sent) have been sent
	cur    []*chunk // per node: the chunk being filled in plan

	local     []Group   // groups run on the local backend
	localDone int       // local groups [0, localDone) are computed
	localOut  []float32 // their sums
	grouper   Grouper

	wg   sync.WaitGroup
	redo []int32 // slots whose node failed
}

// termRef says where a slot's term is: the group idx of chunk ch, or of
// the local groups when ch is nil; idx -1 means the slot is summed into
// the group of an earlier slot.
type termRef struct {
	ch  *chunk
	idx int32
}

// MaxCallRows and MaxCallExperts bound one Forward call: its rows and its
// expert uses (rows times their experts). Expert nodes refuse larger
// calls by default (expertnode.DefaultServiceConfig), so the router
// splits a node's work into calls within them, as it does by
// Config.MaxMessageBytes (which counts the response's sums too).
const (
	MaxCallRows    = 4096
	MaxCallExperts = 65536
)

// chunk is one RPC: part (usually all) of one node's work in one call.
type chunk struct {
	c       *call
	node    int
	req     ixv1.ForwardRequest
	rows    []*ixv1.ForwardRow // reused row messages; req.Rows aliases a prefix
	lastRow int                // batch row of the last request row
	bytes   int                // estimated request+response size
	nGroups int
	nUses   int       // expert uses: the experts of every group
	groups  []slotRun // per group: its first slot and length
	resp    ixv1.ForwardResponse
	err     error
}

// slotRun is a group's slots: first .. first+n-1.
type slotRun struct{ first, n int32 }

func (c *call) reset(ctx context.Context, layer int, b *experts.Batch, out []float32) {
	r := c.r
	c.ctx, c.layer, c.b, c.out = ctx, layer, b, out
	c.t = r.table.Load()
	c.at = r.wireType(layer, b)
	c.rb = kernels.ActivationBytes(c.at, b.Embd)
	c.term = grow(c.term, b.N*b.K)
	c.failed = grow(c.failed, len(r.nodes))
	clear(c.failed)
	c.cur = grow(c.cur, len(r.nodes))
	clear(c.cur)
	c.nChunk, c.sent = 0, 0
	c.local, c.localDone = c.local[:0], 0
	c.redo = c.redo[:0]
	if c.at == gguf.TypeF32 {
		c.f32 = grow(c.f32, b.N*c.rb)
		rpc.PutFloats(c.f32, b.X[:b.N*b.Embd])
	}
}

func (c *call) release() {
	for _, ch := range c.chunks[:c.nChunk] {
		for _, row := range ch.req.Rows {
			row.Activation = nil // do not pin the caller's batch
		}
		ch.err = nil // resp.Sums keeps its capacity for the next call
	}
	c.ctx, c.b, c.out, c.t = nil, nil, nil, nil
	c.r.calls.Put(c)
}

// pick returns the destination of expert e: a live replica not failed in
// this call (replicas are tried from a position that spreads experts over
// them), else the local backend, else -1.
func (c *call) pick(e int32) int {
	r := c.r
	reps := c.t.Replicas(c.layer, int(e))
	for j := range reps {
		n := int(reps[(int(e)+j)%len(reps)])
		if !c.failed[n] && r.nodes[n].up() {
			return n
		}
	}
	if r.cfg.Local != nil {
		return localDest
	}
	return -1
}

// pickPrefix returns the destination of a row's first expert and how many
// of the row's leading experts it takes: among the live replicas of the
// first expert, the one holding the longest run of leading experts (its
// terms then travel as one sum), else the local backend with all of them.
func (c *call) pickPrefix(row []int32) (int, int32) {
	r := c.r
	reps := c.t.Replicas(c.layer, int(row[0]))
	best, bestLen := -1, int32(0)
	for j := range reps {
		n := int(reps[(int(row[0])+j)%len(reps)])
		if c.failed[n] || !r.nodes[n].up() {
			continue
		}
		p := int32(1)
		for ; p < int32(len(row)) && holds(c.t.Replicas(c.layer, int(row[p])), n); p++ {
		}
		if p > bestLen {
			best, bestLen = n, p
		}
	}
	if best >= 0 {
		return best, bestLen
	}
	if r.cfg.Local != nil {
		return localDest, int32(len(row))
	}
	return -1, 0
}

func holds(reps []int32, n int) bool {
	for _, m := range reps {
		if int(m) == n {
			return true
		}
	}
	return false
}

// plan assigns expert terms to destinations and builds the chunks. With
// redo nil it plans the whole batch: per row, the longest leading run of
// experts one live node holds is one group (pickPrefix), every later
// expert a group of its own on its replica. Otherwise it plans the given
// slots as single terms.
func (c *call) plan(redo []int32) error {
	b := c.b
	clear(c.cur)
	if redo != nil {
		for _, s := range redo {
			d := c.pick(b.Experts[s])
			if d == -1 {
				return c.r.noHolder(c.t, c.layer, b.Experts[s])
			}
			c.add(int(s)/b.K, s, 1, d)
		}
		return nil
	}
	for i := range b.N {
		s0 := int32(i * b.K)
		d0, p := c.pickPrefix(b.Experts[s0 : s0+int32(b.K)])
		if d0 == -1 {
			return c.r.noHolder(c.t, c.layer, b.Experts[s0])
		}
		c.add(i, s0, p, d0)
		for s := s0 + p; s < s0+int32(b.K); s++ {
			d := c.pick(b.Experts[s])
			if d == -1 {
				return c.r.noHolder(c.t, c.layer, b.Experts[s])
			}
			c.add(i, s, 1, d)
		}
	}
	return nil
}

// add puts the group of slots first..first+n-1 of row i on destination d.
func (c *call) add(i int, first, n int32, d int) {
	b := c.b
	for s := first + 1; s < first+n; s++ {
		c.term[s] = termRef{idx: -1}
	}
	if d == localDest {
		c.term[first] = termRef{idx: int32(len(c.local))}
		c.local = append(c.local, Group{Row: i, Experts: b.Experts[first : first+n], Weights: b.Weights[first : first+n]})
		return
	}
	ch := c.cur[d]
	size := 4*b.Embd + 8*int(n) + 8
	if ch == nil || ch.lastRow != i {
		size += c.rb + 16
	}
	if ch == nil || (ch.nGroups > 0 && (ch.bytes+size > c.r.cfg.MaxMessageBytes-4096 || ch.nUses+int(n) > MaxCallExperts ||
		(ch.lastRow != i && len(ch.req.Rows) == MaxCallRows))) {
		ch = c.newChunk(d)
		c.cur[d] = ch
	}
	ch.bytes += size
	if ch.lastRow != i {
		row := ch.row()
		if c.at != gguf.TypeF32 {
			row.Activation = b.Q[i*c.rb : (i+1)*c.rb]
		} else {
			row.Activation = c.f32[i*c.rb : (i+1)*c.rb]
		}
		ch.lastRow = i
	}
	row := ch.req.Rows[len(ch.req.Rows)-1]
	for s := first; s < first+n; s++ {
		row.Experts = append(row.Experts, uint32(b.Experts[s]))
		row.Weights = append(row.Weights, b.Weights[s])
	}
	row.GroupSizes = append(row.GroupSizes, uint32(n))
	c.term[first] = termRef{ch: ch, idx: int32(ch.nGroups)}
	ch.groups = append(ch.groups, slotRun{first, n})
	ch.nGroups++
	ch.nUses += int(n)
}

// newChunk returns a cleared chunk for node d.
func (c *call) newChunk(d int) *chunk {
	if c.nChunk == len(c.chunks) {
		c.chunks = append(c.chunks, &chunk{c: c})
	}
	ch := c.chunks[c.nChunk]
	c.nChunk++
	ch.node, ch.lastRow, ch.bytes, ch.nGroups, ch.nUses, ch.err = d, -1, 0, 0, 0, nil
	ch.groups = ch.groups[:0]
	ch.req.Layer = uint32(c.layer)
	ch.req.ActivationType = rpc.WireType(c.at)
	ch.req.ModelFingerprint = c.r.cfg.Model.Fingerprint
	ch.req.Rows = ch.rows[:0]
	return ch
}

// row appends a cleared request row.
func (ch *chunk) row() *ixv1.ForwardRow {
	n := len(ch.req.Rows)
	if n == len(ch.rows) {
		ch.rows = append(ch.rows, &ixv1.ForwardRow{})
	}
	row := ch.rows[n]
	row.Experts, row.Weights, row.GroupSizes = row.Experts[:0], row.Weights[:0], row.GroupSizes[:0]
	ch.req.Rows = ch.rows[:n+1]
	return row
}

// send hands the chunks planned since the last send to their nodes.
func (c *call) send() {
	for _, ch := range c.chunks[c.sent:c.nChunk] {
		c.wg.Add(1)
		c.r.nodes[ch.node].work <- ch
	}
	c.sent = c.nChunk
}

// finish computes the local groups while RPCs run, waits, fails over the
// work of failed nodes until every term is in, and writes out.
func (c *call) finish() error {
	b := c.b
	for {
		if c.localDone < len(c.local) {
			c.localOut = grow(c.localOut, len(c.local)*b.Embd)
			groups := c.local[c.localDone:]
			start := time.Now()
			err := c.grouper.Run(c.ctx, c.r.cfg.Local, c.layer, b.Embd, b.X, b.Q, b.QType, groups, c.localOut[c.localDone*b.Embd:])
			c.r.obs.ExpertCall(LocalNode, groupRows(groups), time.Since(start), err)
			if err != nil {
				c.wg.Wait()
				return fmt.Errorf("router: local experts of layer %d: %w", c.layer, err)
			}
			c.localDone = len(c.local)
		}
		c.wg.Wait()
		if err := c.ctx.Err(); err != nil {
			return err
		}
		c.redo = c.redo[:0]
		round := c.chunks[:c.nChunk]
		for _, ch := range round {
			if ch.err == nil {
				continue
			}
			if !c.failed[ch.node] {
				c.failed[ch.node] = true
				c.r.failed(c.r.nodes[ch.node], c.layer, len(ch.req.Rows), ch.err)
			}
			terms := 0
			for _, g := range ch.groups {
				terms += int(g.n)
			}
			c.r.obs.Failover(c.r.nodes[ch.node].name, terms)
			for _, g := range ch.groups {
				for s := g.first; s < g.first+g.n; s++ {
					c.redo = append(c.redo, s)
				}
			}
			ch.err = nil
			ch.groups = ch.groups[:0] // its terms are replanned
		}
		if len(c.redo) == 0 {
			break
		}
		if err := c.plan(c.redo); err != nil {
			return err
		}
		c.send()
	}
	c.gather()
	return nil
}

// gather adds each row's terms in slot order into out.
func (c *call) gather() {
	b, embd := c.b, c.b.Embd
	for i := range b.N {
		o := c.out[i*embd : (i+1)*embd]
		for k := range b.K {
			t := c.term[i*b.K+k]
			if t.idx < 0 {
				continue
			}
			switch {
			case t.ch != nil && k == 0:
				rpc.Floats(o, t.ch.resp.Sums[int(t.idx)*embd*4:])
			case t.ch != nil:
				rpc.AddFloats(o, t.ch.resp.Sums[int(t.idx)*embd*4:])
			case k == 0:
				copy(o, c.localOut[int(t.idx)*embd:])
			default:
				add(o, c.localOut[int(t.idx)*embd:])
			}
		}
	}
}

// groupRows counts the rows of groups (a row's groups are adjacent).
func groupRows(groups []Group) int {
	n := 0
	for i, g := range groups {
		if i == 0 || g.Row != groups[i-1].Row {
			n++
		}
	}
	return n
}

func add(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}

func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}
