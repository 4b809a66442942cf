package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a member's gossip state.
type State string

// Member states. Suspect is not set by this package (memberlist does not
// expose its suspicion); callers that also probe a member over gRPC may
// report it.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// Member is one member as this process sees it.
type Member struct {
	Name string
	// Gossip is the member's gossip address host:port.
	Gossip string
	Meta   Meta
	State  State
	// Since is when the member was last seen joining, changing or going.
	Since time.Time
}

// EventKind says what happened to a member.
type EventKind int

// Event kinds.
const (
	EventJoin EventKind = iota + 1
	EventUpdate
	EventLeave // a graceful leave
	EventFail  // declared dead
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFail:
		return "fail"
	}
	return "event(" + strconv.Itoa(int(k)) + ")"
}

// Event is a change of a member.
type Event struct {
	Kind   EventKind
	Member Member
}

// Cluster is this process's membership. Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	ml     *memberlist.Memberlist
	bridge *logBridge

	mu      sync.Mutex
	meta    []byte
	members map[string]*Member
	subs    []chan Event
	changed chan struct{}

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Start binds the gossip socket, joins the seeds (a failed first join is
// logged and retried every RejoinInterval, so members may start in any
// order) and runs until Leave or Shutdown.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	meta, err := cfg.Meta.Encode()
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, log: cfg.Logger, meta: meta, members: map[string]*Member{},
		changed: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	mc, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	mc.Delegate = (*delegate)(c)
	mc.Events = (*events)(c)
	bridge, err := newLogBridge(c.log.With("component", "memberlist"), cfg.LogInterval, cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("membership: metrics: %w", err)
	}
	mc.Logger = log.New(bridge, "", 0)
	c.bridge = bridge
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	c.ml = ml
	c.log.Info("gossip started", "name", cfg.Name, "addr", c.Addr(), "encrypted", len(cfg.Key) > 0, "seeds", strings.Join(cfg.Seeds, ","))
	joined := c.join(ctx)
	go c.rejoinLoop(joined)
	return c, nil
}

// Addr returns the gossip address others reach this member at.
func (c *Cluster) Addr() string {
	n := c.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Name returns this member's name.
func (c *Cluster) Name() string { return c.cfg.Name }

// join tries the seeds once; it reports whether some other member was
// reached (or there are no seeds).
func (c *Cluster) join(ctx context.Context) bool {
	seeds := c.seeds()
	if len(seeds) == 0 {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	n, err := c.ml.Join(seeds)
	if err != nil && n == 0 {
		c.log.Warn("could not join any seed yet; retrying", "seeds", strings.Join(seeds, ","), "err", err, "retry", c.cfg.RejoinInterval)
		return false
	}
	c.log.Info("joined the cluster", "contacted", n, "members", c.ml.NumMembers())
	return true
}

// seeds returns the seeds without this member's own address.
func (c *Cluster) seeds() []string {
	self := c.Addr()
	var out []string
	for _, s := range c.cfg.Seeds {
		if s = strings.TrimSpace(s); s != "" && s != self {
			out = append(out, s)
		}
	}
	return out
}

// rejoinLoop retries the seeds while the member is alone, and forgets
// long-departed members.
func (c *Cluster) rejoinLoop(joined bool) {
	defer close(c.done)
	every := c.cfg.RejoinInterval
	if every == 0 {
		every = time.Minute // only forgetting
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if c.cfg.RejoinInterval > 0 && (!joined || c.ml.NumMembers() < 2) && len(c.seeds()) > 0 {
			joined = c.join(context.Background())
		}
		c.forget()
	}
}

func (c *Cluster) forget() {
	if c.cfg.ForgetAfter == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, m := range c.members {
		if (m.State == StateDead || m.State == StateLeft) && time.Since(m.Since) > c.cfg.ForgetAfter {
			delete(c.members, name)
		}
	}
}

// Members returns every member known, this one included, sorted by name:
// the alive ones and those that died or left within ForgetAfter.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Alive returns the alive members of the given role ("" any), sorted by
// name.
func (c *Cluster) Alive(role string) []Member {
	var out []Member
	for _, m := range c.Members() {
		if m.State == StateAlive && (role == "" || m.Meta.Role == role) {
			out = append(out, m)
		}
	}
	return out
}

// Changed returns a channel that receives (coalesced) whenever the
// membership or a member's metadata changes: read Members then.
func (c *Cluster) Changed() <-chan struct{} { return c.changed }

// Subscribe returns a channel of events with the given buffer. Events are
// dropped (and logged) when it is full: consumers that must not miss a
// change read Members on Changed instead. cancel ends the subscription.
func (c *Cluster) Subscribe(buffer int) (ch <-chan Event, cancel func()) {
	sub := make(chan Event, buffer)
	c.mu.Lock()
	c.subs = append(c.subs, sub)
	c.mu.Unlock()
	return sub, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i := slices.Index(c.subs, sub); i >= 0 {
			c.subs = slices.Delete(c.subs, i, i+1)
			close(sub)
		}
	}
}

// UpdateMeta changes what this member gossips and pushes it out.
func (c *Cluster) UpdateMeta(m Meta) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	c.mu.Lock()
	same := bytes.Equal(b, c.meta)
	c.meta = b
	c.cfg.Meta = m
	c.mu.Unlock()
	if same {
		return nil
	}
	return c.ml.UpdateNode(5 * time.Second)
}

// Meta returns this member's current metadata.
func (c *Cluster) Meta() Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Meta
}

// Leave tells the cluster this member is going (others see EventLeave
// rather than a failure after a timeout), then stops gossip.
func (c *Cluster) Leave(timeout time.Duration) error {
	m := c.Meta()
	m.Leaving, m.Draining = true, true
	if err := c.UpdateMeta(m); err != nil {
		c.log.Warn("could not announce the leave", "err", err)
	}
	err := c.ml.Leave(timeout)
	if err != nil {
		c.log.Warn("leave was not acknowledged", "err", err)
	}
	return errors.Join(err, c.Shutdown())
}

// Shutdown stops gossip without leaving: others declare this member dead
// after their failure detection timeout (as if it crashed).
func (c *Cluster) Shutdown() error {
	var err error
	c.stopOnce.Do(func() {
		close(c.stop)
		err = c.ml.Shutdown()
		<-c.done
		c.log.Info("gossip stopped")
	})
	return err
}

// record updates the member table from a memberlist node and notifies.
func (c *Cluster) record(kind EventKind, n *memberlist.Node) {
	meta, err := DecodeMeta(n.Meta)
	if err != nil && kind != EventLeave && kind != EventFail {
		c.log.Warn("ignoring a member with bad metadata", "member", n.Name, "err", err)
		return
	}
	m := Member{Name: n.Name, Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), Meta: meta,
		State: StateAlive, Since: time.Now()}
	switch kind {
	case EventLeave:
		m.State = StateLeft
	case EventFail:
		m.State = StateDead
	}
	c.mu.Lock()
	if old, ok := c.members[n.Name]; ok && err != nil {
		m.Meta = old.Meta // a departed member's last known metadata
	}
	c.members[n.Name] = &m
	subs := slices.Clone(c.subs)
	c.mu.Unlock()
	lvl := slog.LevelInfo
	if kind == EventUpdate {
		lvl = slog.LevelDebug
	}
	c.log.Log(context.Background(), lvl, "member "+kind.String(), "member", n.Name, "role", m.Meta.Role, "rpc", m.Meta.RPC,
		"gossip", m.Gossip, "draining", m.Meta.Draining)
	ev := Event{Kind: kind, Member: m}
	for _, s := range subs {
		select {
		case s <- ev:
		default:
			c.log.Warn("event subscriber is full: dropped an event", "event", kind.String(), "member", n.Name)
		}
	}
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// delegate serves this member's metadata to memberlist.
type delegate Cluster

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		return nil // Encode keeps it under MetaMaxSize; never reached
	}
	return slices.Clone(d.meta)
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events turns memberlist's callbacks into member records. memberlist
// calls them from its own goroutines; they do not block.
type events Cluster

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Cluster)(e).record(EventJoin, n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Cluster)(e).record(EventUpdate, n) }
func (e *events) NotifyLeave(n *memberlist.Node) {
	// memberlist reports a graceful leave and a death alike (Node.State
	// is not kept up to date): a leaver sets Meta.Leaving first.
	if m, err := DecodeMeta(n.Meta); err == nil && m.Leaving {
		(*Cluster)(e).record(EventLeave, n)
		return
	}
	(*Cluster)(e).record(EventFail, n)
}
