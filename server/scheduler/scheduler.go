// Package scheduler runs continuous batching over one model.Runner: it
// admits generation requests into a fixed set of slots (one KV cache
// each, allocated once), and each step evaluates one Forward holding every
// active sequence's next piece of work (a prompt chunk or one decode
// token), samples each sequence's next token and streams it out through
// the request's channel. Requests decode together, so a MoE layer's
// expert work for all of them goes to the experts backend in one call per
// layer per step. A request is admitted whenever a slot is free; a
// bounded queue holds those waiting for one. A failed step fails only the
// requests whose rows were in it: the loop keeps running.
//
// It knows token ids only: tokenization, chat templates, stop strings and
// HTTP are the server's.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/grammar"
	"github.com/inference-x/inference-x/model"
)

// Errors returned by Submit.
var (
	// ErrQueueFull means every slot is taken and the queue is full.
	ErrQueueFull = errors.New("scheduler: queue is full")
	// ErrStopped means the scheduler is not running.
	ErrStopped = errors.New("scheduler: stopped")
	// ErrPromptTooLong means the prompt does not fit the slot context.
	ErrPromptTooLong = errors.New("scheduler: prompt is longer than the context")
)

// Config sizes a Scheduler.
type Config struct {
	// Slots is the number of sequences decoding at once (KV caches).
	Slots int
	// Ctx is each slot's context size in tokens.
	Ctx int
	// KV is the cache element type.
	KV model.KVType
	// MaxBatch is the most tokens one Forward evaluates: the decode
	// tokens of all active sequences plus prompt chunks.
	MaxBatch int
	// Queue is the most requests waiting for a slot once every slot is
	// taken; Submit fails with ErrQueueFull beyond Slots+Queue requests
	// in flight.
	Queue int
	// Threads for the runner (0: one per CPU).
	Threads int
}

// DefaultConfig returns 4 slots of 4096 tokens, f16 cache, batches of 512
// tokens and a queue of 64.
func DefaultConfig() Config {
	return Config{Slots: 4, Ctx: 4096, KV: model.KVF16, MaxBatch: 512, Queue: 64}
}

// Validate checks the sizes.
func (c *Config) Validate() error {
	switch {
	case c.Slots <= 0:
		return fmt.Errorf("scheduler: slots %d must be positive", c.Slots)
	case c.Ctx <= 0:
		return fmt.Errorf("scheduler: context %d must be positive", c.Ctx)
	case c.MaxBatch < c.Slots:
		return fmt.Errorf("scheduler: batch %d must hold at least one token per slot (%d)", c.MaxBatch, c.Slots)
	case c.Queue < 0:
		return fmt.Errorf("scheduler: queue %d must be >= 0", c.Queue)
	case c.Threads < 0:
		return fmt.Errorf("scheduler: threads %d must be >= 0", c.Threads)
	}
	return nil
}

// Observer receives the scheduler's measurements (metrics). Its methods
// are called from the scheduler's goroutine (Queue also from Submit's),
// must not block and should not allocate.
type Observer interface {
	// Step reports one Forward: rows evaluated (prompt and decode tokens),
	// active sequences, and its duration.
	Step(promptTokens, decodeTokens, sequences int, d time.Duration)
	// Queue reports the number of requests waiting for a slot.
	Queue(depth int)
	// Idle reports that the last sequence ended: no work until the next
	// request (gauges go back to their idle values).
	Idle()
}

// Planner chooses a per-request precision plan when a request is admitted
// (--adaptive, issue 12). The plan is kept with the request (Request.Plan);
// a plan that is a PrecisionPlan has its weights set on the request's
// sequence until the request ends. Plan runs on the scheduler's goroutine:
// every sequence waits while it runs.
type Planner interface {
	Plan(prompt []int32) any
}

// PrecisionPlan is a plan that says which weights the sequence runs on
// (adaptive.Decision); nil means the model's own.
type PrecisionPlan interface {
	ModelPrecision() *model.Precision
}

// FinishReason says why a generation ended.
type FinishReason string

// Finish reasons (the OpenAI API's words where it has them).
const (
	FinishStop      FinishReason = "stop"      // an end-of-generation token
	FinishLength    FinishReason = "length"    // MaxTokens or the context
	FinishCancelled FinishReason = "cancelled" // the request's context ended
	FinishError     FinishReason = "error"     // Err says what failed
)

// Request is one generation.
type Request struct {
	// Prompt holds the token ids to evaluate (BOS included when wanted).
	Prompt []int32
	// MaxTokens bounds the generated tokens; <= 0 means until the
	// context is full.
	MaxTokens int
	// Sampler configures sampling.
	Sampler model.SamplerConfig
	// IsEOG reports end-of-generation tokens (nil: none).
	IsEOG func(int32) bool
	// Plan is set by the Planner at admission.
	Plan any
	// Grammar, when set, constrains the generation (constrained decoding:
	// GBNF, JSON Schema): each step the tokens it does not allow get -Inf
	// logits before sampling, end-of-generation tokens only once it can
	// end, and the generation ends with FinishStop as soon as nothing but
	// the end can follow. Vocab is the model's vocabulary for it
	// (grammar.VocabFromTokenizer, built once per model); both or neither.
	Grammar *grammar.Grammar
	Vocab   *grammar.Vocab
	// Logprobs asks each token Event for its Logprob and the TopLogprobs
	// best alternatives (model.Sampler.Logprobs: the log-softmax of the
	// logits after the grammar mask, the logit bias and the penalties).
	Logprobs    bool
	TopLogprobs int
}

// Event is one message on a request's stream: a generated token, or the
// end (Done) with the reason and counts.
type Event struct {
	Token int32
	// Logprob and Top are set when the request asked for Logprobs.
	Logprob float32
	Top     []model.TokenLogprob
	Done    bool
	Reason  FinishReason
	Err     error
	// PromptTokens and Generated count the tokens (on the Done event).
	PromptTokens, Generated int
}

// Stream is a submitted request's output. Events carries every token then
// one Done event, then closes; its buffer holds the whole generation, so
// the scheduler never waits for a slow reader. To stop early, cancel the
// context given to Submit.
type Stream struct {
	Events <-chan Event
}

// job is a request in flight.
type job struct {
	ctx    context.Context
	req    *Request
	events chan Event
	// Queued is when Submit accepted it.
	queued time.Time
}

// slot is one sequence's state.
type slot struct {
	seq     *model.Sequence
	job     *job
	sampler *model.Sampler
	fed     int   // prompt tokens evaluated
	pos     int   // next position
	next    int32 // sampled token waiting to be fed (decode phase)
	gen     int   // tokens generated
	max     int   // generation budget
	// matcher follows the request's grammar (nil: unconstrained); mask is
	// its allowed-token bitmap, kept across requests and reused when the
	// size fits, so a constrained step allocates nothing after warm-up.
	matcher *grammar.Matcher
	mask    []uint64
}

func (s *slot) prefilling() bool { return s.fed < len(s.job.req.Prompt) }

// Scheduler runs continuous batching. Submit may be called from any
// goroutine; Run runs the loop on one.
type Scheduler struct {
	cfg     Config
	m       *model.Model
	runner  *model.Runner
	log     *slog.Logger
	obs     Observer
	planner Planner
	experts experts.Backend

	// mu orders Submit's admission against shutdown, so no job is
	// queued after shutdown drained the queue.
	mu       sync.Mutex
	isDown   bool
	pending  chan *job // capacity Slots+Queue: a send never blocks
	stopped  chan struct{}
	inflight atomic.Int64 // requests accepted and not ended (queued or in a slot)
	running  atomic.Int32 // sequences in slots
	kvUsed   atomic.Int64 // KV cache positions filled, over all slots

	slots []slot
	info  []slotInfo // slots.go
	batch model.Batch
	// rowSlot[i] is the slot whose logits are row i of the Forward output.
	rowSlot []int
	// inBatch lists the slots with rows in the current step.
	inBatch []int
}

// Option configures a Scheduler.
type Option func(*Scheduler)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Scheduler) { s.log = l } }

// WithObserver sets the metrics observer.
func WithObserver(o Observer) Option { return func(s *Scheduler) { s.obs = o } }

// WithPlanner sets the per-request precision planner (--adaptive).
func WithPlanner(p Planner) Option { return func(s *Scheduler) { s.planner = p } }

// WithExperts sets where MoE layers' routed experts run (the router in
// cluster mode); the default computes them in-process. Every step makes
// one Backend.Forward call per MoE layer holding all its sequences' rows.
func WithExperts(b experts.Backend) Option { return func(s *Scheduler) { s.experts = b } }

// New allocates the runner and every slot's cache for m.
func New(m *model.Model, cfg Config, opts ...Option) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg:     cfg,
		m:       m,
		log:     slog.New(slog.DiscardHandler),
		obs:     nopObserver{},
		pending: make(chan *job, cfg.Slots+cfg.Queue),
		stopped: make(chan struct{}),
		slots:   make([]slot, cfg.Slots),
		info:    newSlotInfo(cfg.Slots),
		rowSlot: make([]int, 0, cfg.MaxBatch),
		inBatch: make([]int, 0, cfg.Slots),
	}
	for _, o := range opts {
		o(s)
	}
	for i := range s.slots {
		seq, err := m.NewSequence(cfg.Ctx, cfg.KV)
		if err != nil {
			return nil, err
		}
		s.slots[i].seq = seq
	}
	s.batch = model.Batch{
		Tokens: make([]int32, 0, cfg.MaxBatch),
		Pos:    make([]int, 0, cfg.MaxBatch),
		Seq:    make([]*model.Sequence, 0, cfg.MaxBatch),
		Logits: make([]int, 0, cfg.MaxBatch),
	}
	s.runner = m.NewRunner(model.Options{Threads: cfg.Threads, MaxBatch: cfg.MaxBatch, Experts: s.experts})
	return s, nil
}

// Config returns the configuration.
func (s *Scheduler) Config() Config { return s.cfg }

// Active returns the number of sequences holding a slot.
func (s *Scheduler) Active() int { return int(s.running.Load()) }

// QueueDepth returns the number of requests waiting for a slot: those in
// flight beyond the slots.
func (s *Scheduler) QueueDepth() int { return max(0, s.InFlight()-s.cfg.Slots) }

// InFlight returns the number of requests accepted and not ended: in a
// slot, or admitted and waiting for one.
func (s *Scheduler) InFlight() int { return int(s.inflight.Load()) }

// Running reports whether the scheduler takes work: Run has not
// returned (a failed step does not end it).
func (s *Scheduler) Running() bool {
	select {
	case <-s.stopped:
		return false
	default:
		return true
	}
}

// Stats is a snapshot of the scheduler's occupancy.
type Stats struct {
	Slots, Busy int // slots, and slots holding a sequence
	Queued      int // requests waiting for a slot
	// KVTokens are the cache positions the sequences fill; KVCapacity all
	// slots' positions (Slots x Ctx).
	KVTokens, KVCapacity int
}

// Stats returns the occupancy; safe for concurrent use.
func (s *Scheduler) Stats() Stats {
	return Stats{Slots: s.cfg.Slots, Busy: s.Active(), Queued: s.QueueDepth(),
		KVTokens: int(s.kvUsed.Load()), KVCapacity: s.cfg.Slots * s.cfg.Ctx}
}

// Submit queues req: it is accepted whenever a slot is free or fewer than
// Queue requests wait for one. It fails at once with ErrQueueFull when
// Slots+Queue requests are in flight, ErrPromptTooLong when the prompt
// cannot fit a slot, or ErrStopped after Run returned. ctx ending cancels
// the sequence (the stream then ends with FinishCancelled).
func (s *Scheduler) Submit(ctx context.Context, req *Request) (*Stream, error) {
	if len(req.Prompt) == 0 {
		return nil, errors.New("scheduler: empty prompt")
	}
	if len(req.Prompt) >= s.cfg.Ctx {
		return nil, fmt.Errorf("%w: %d tokens, context %d", ErrPromptTooLong, len(req.Prompt), s.cfg.Ctx)
	}
	for _, t := range req.Prompt {
		if t < 0 || int(t) >= s.m.Config.Vocab {
			return nil, fmt.Errorf("scheduler: token id %d is outside the vocabulary [0, %d)", t, s.m.Config.Vocab)
		}
	}
	if err := req.Sampler.Validate(); err != nil {
		return nil, err
	}
	if (req.Grammar == nil) != (req.Vocab == nil) {
		return nil, errors.New("scheduler: a grammar needs a vocabulary and a vocabulary a grammar")
	}
	budget := s.cfg.Ctx - len(req.Prompt)
	if req.MaxTokens > 0 {
		budget = min(budget, req.MaxTokens)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isDown {
		return nil, ErrStopped
	}
	if s.inflight.Load() >= int64(s.cfg.Slots+s.cfg.Queue) {
		return nil, ErrQueueFull
	}
	s.inflight.Add(1)
	j := &job{ctx: ctx, req: req, events: make(chan Event, budget+1), queued: time.Now()}
	s.pending <- j // never blocks: at most Slots+Queue jobs are in flight
	s.obs.Queue(s.QueueDepth())
	return &Stream{Events: j.events}, nil
}

// end sends j's Done event and counts it out of the requests in flight.
// The count drops first, so a reader of the Done event sees it.
func (s *Scheduler) end(j *job, ev Event) {
	s.inflight.Add(-1)
	s.obs.Queue(s.QueueDepth())
	ev.Done = true
	j.events <- ev
	close(j.events)
}

// Run runs the loop until ctx ends, then ends every sequence with
// FinishCancelled, rejects further Submits and frees the runner. A step
// that fails ends the requests whose rows were in it with FinishError and
// the loop goes on: Run returns only when ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	defer s.shutdown()
	for {
		if s.active() == 0 {
			// Idle: block until work or shutdown.
			s.kvUsed.Store(0)
			s.obs.Idle()
			select {
			case <-ctx.Done():
				return nil
			case j := <-s.pending:
				s.admit(j)
			}
		}
		s.admitPending()
		if err := s.step(ctx); err != nil && ctx.Err() != nil {
			return nil
		}
	}
}

func (s *Scheduler) shutdown() {
	s.mu.Lock()
	s.isDown = true
	close(s.stopped)
	s.mu.Unlock()
	for i := range s.slots {
		if s.slots[i].job != nil {
			s.finish(i, FinishCancelled, ErrStopped)
		}
	}
	for {
		select {
		case j := <-s.pending:
			s.end(j, Event{Reason: FinishCancelled, Err: ErrStopped, PromptTokens: len(j.req.Prompt)})
		default:
			s.kvUsed.Store(0)
			s.obs.Idle()
			s.runner.Close()
			return
		}
	}
}

func (s *Scheduler) active() int {
	n := 0
	for i := range s.slots {
		if s.slots[i].job != nil {
			n++
		}
	}
	return n
}

// admitPending moves queued requests into free slots.
func (s *Scheduler) admitPending() {
	for s.active() < len(s.slots) {
		select {
		case j := <-s.pending:
			s.admit(j)
		default:
			return
		}
	}
}

// admit puts j into a free slot (the caller checked there is one).
func (s *Scheduler) admit(j *job) {
	if err := j.ctx.Err(); err != nil {
		s.end(j, Event{Reason: FinishCancelled, Err: err, PromptTokens: len(j.req.Prompt)})
		return
	}
	i := 0
	for s.slots[i].job != nil {
		i++
	}
	sl := &s.slots[i]
	sampler, err := model.NewSampler(j.req.Sampler, s.m.Config.Vocab)
	if err != nil { // validated in Submit
		s.end(j, Event{Reason: FinishError, Err: err, PromptTokens: len(j.req.Prompt)})
		return
	}
	for _, t := range j.req.Prompt {
		sampler.Accept(t)
	}
	var prec *model.Precision
	if s.planner != nil {
		j.req.Plan = s.planner.Plan(j.req.Prompt)
		if pp, ok := j.req.Plan.(PrecisionPlan); ok {
			prec = pp.ModelPrecision()
		}
	}
	sl.seq.SetPrecision(prec)
	budget := s.cfg.Ctx - len(j.req.Prompt)
	if j.req.MaxTokens > 0 {
		budget = min(budget, j.req.MaxTokens)
	}
	var matcher *grammar.Matcher
	mask := sl.mask
	if g := j.req.Grammar; g != nil {
		matcher = g.NewMatcher(j.req.Vocab)
		if n := j.req.Vocab.MaskWords(); len(mask) != n {
			mask = make([]uint64, n)
		}
	}
	*sl = slot{seq: sl.seq, job: j, sampler: sampler, max: budget, matcher: matcher, mask: mask}
	s.running.Add(1)
	s.info[i].prompt.Store(int64(len(j.req.Prompt)))
	sl.seq.Len = 0
	s.log.Debug("admitted", "slot", i, "prompt_tokens", len(j.req.Prompt), "max_tokens", budget,
		"waited", time.Since(j.queued))
}

// finish ends slot i's job and frees the slot; its cache positions are
// discarded (the next sequence starts at 0).
func (s *Scheduler) finish(i int, reason FinishReason, err error) {
	sl := &s.slots[i]
	j := sl.job
	sl.job, sl.sampler, sl.matcher = nil, nil, nil
	sl.seq.SetPrecision(nil)
	sl.seq.Len = 0
	s.kvUsed.Add(-int64(sl.pos))
	s.running.Add(-1)
	s.info[i].prompt.Store(-1)
	s.end(j, Event{Reason: reason, Err: err, PromptTokens: len(j.req.Prompt), Generated: sl.gen})
}

// step runs one Forward over every active sequence. When it fails, the
// sequences with rows in it end with FinishError and the error; the
// others (prompts waiting for room in the batch) go on.
func (s *Scheduler) step(ctx context.Context) error {
	b := &s.batch
	b.Reset()
	s.rowSlot = s.rowSlot[:0]
	s.inBatch = s.inBatch[:0]
	// Drop cancelled sequences; decode tokens first (one per generating
	// sequence, so streams keep moving), then prompt chunks fill the rest.
	decode := 0
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.job == nil {
			continue
		}
		if err := sl.job.ctx.Err(); err != nil {
			s.finish(i, FinishCancelled, err)
			continue
		}
		if sl.prefilling() {
			continue
		}
		s.rowSlot = append(s.rowSlot, i)
		s.inBatch = append(s.inBatch, i)
		b.Add(sl.seq, sl.next, sl.pos, true)
		sl.pos++
		decode++
	}
	prompt := 0
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.job == nil || !sl.prefilling() {
			continue
		}
		room := s.cfg.MaxBatch - len(b.Tokens)
		if room == 0 {
			break
		}
		p := sl.job.req.Prompt
		n := min(room, len(p)-sl.fed)
		s.inBatch = append(s.inBatch, i)
		for k := 0; k < n; k++ {
			last := sl.fed+k == len(p)-1
			if last {
				s.rowSlot = append(s.rowSlot, i)
			}
			b.Add(sl.seq, p[sl.fed+k], sl.pos, last)
			sl.pos++
		}
		sl.fed += n
		prompt += n
	}
	if len(b.Tokens) == 0 {
		return nil
	}
	s.kvUsed.Add(int64(len(b.Tokens)))
	start := time.Now()
	logits, err := s.runner.Forward(ctx, b)
	if err != nil {
		if ctx.Err() != nil {
			return err // shutting down: shutdown ends the sequences
		}
		s.log.Error("forward step failed: ending its sequences", "err", err, "rows", len(b.Tokens), "sequences", len(s.inBatch))
		for _, i := range s.inBatch {
			s.finish(i, FinishError, err)
		}
		return err
	}
	s.obs.Step(prompt, decode, len(s.rowSlot), time.Since(start))
	vocab := s.m.Config.Vocab
	for r, i := range s.rowSlot {
		sl := &s.slots[i]
		row := logits[r*vocab : (r+1)*vocab]
		if sl.matcher != nil {
			sl.matcher.Mask(sl.mask)
			grammar.ApplyMask(row, sl.mask)
		}
		tok := sl.sampler.Sample(row)
		if sl.matcher != nil {
			if err := sl.matcher.AcceptToken(tok); err != nil {
				// Not expected (disallowed tokens have zero probability):
				// take the best allowed token rather than leave the grammar.
				tok = argmax(row)
				if err := sl.matcher.AcceptToken(tok); err != nil {
					s.finish(i, FinishError, fmt.Errorf("scheduler: grammar: %w", err))
					continue
				}
			}
		}
		ev := Event{Token: tok}
		if sl.job.req.Logprobs {
			ev.Top = make([]model.TokenLogprob, sl.job.req.TopLogprobs)
			ev.Logprob = sl.sampler.Logprobs(row, tok, ev.Top)
		}
		sl.sampler.Accept(tok)
		if sl.job.req.IsEOG != nil && sl.job.req.IsEOG(tok) {
			s.finish(i, FinishStop, nil)
			continue
		}
		sl.gen++
		sl.job.events <- ev
		if sl.matcher != nil && sl.matcher.Done() {
			s.finish(i, FinishStop, nil) // nothing but the end can follow
			continue
		}
		if sl.gen >= sl.max || sl.pos >= s.cfg.Ctx {
			s.finish(i, FinishLength, nil)
			continue
		}
		sl.next = tok
	}
	return nil
}

// argmax returns the index of the largest logit.
func argmax(row []float32) int32 {
	best := 0
	for i, l := range row {
		if l > row[best] {
			best = i
		}
	}
	return int32(best)
}

type nopObserver struct{}

func (nopObserver) Step(int, int, int, time.Duration) {}
func (nopObserver) Queue(int)                         {}
func (nopObserver) Idle()                             {}
