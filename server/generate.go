package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/server/scheduler"
	"github.com/inference-x/inference-x/tokenizer"
)

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) error {
	var req chatRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	p, err := s.params(&req.samplingFields)
	if err != nil {
		return err
	}
	msgs, err := chatMessages(req.Messages)
	if err != nil {
		return err
	}
	text, err := s.renderChat(&req, msgs)
	if err != nil {
		return err
	}
	if p.output, err = s.chatOutput(&req, text, &p); err != nil {
		return err
	}
	tokens := s.tok.Encode(text, true, true)
	return s.generate(w, r, tokens, p, true)
}

// renderChat renders a chat request's messages through the template
// (the prompt /v1/chat/completions generates from, /apply-template's
// answer).
func (s *Server) renderChat(req *chatRequest, msgs []chat.Message) (string, error) {
	vars := make(map[string]any, len(req.ChatTemplateKwargs))
	for k, v := range req.ChatTemplateKwargs {
		vars[k] = v
	}
	return s.tmpl.Render(msgs, chat.RenderOptions{
		BOS: s.bos, EOS: s.eos, AddGenerationPrompt: true, StripBOS: s.tok.AddBOS(),
		Tools: req.Tools, Vars: vars, Now: s.now,
	})
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) error {
	var req completionRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	p, err := s.params(&req.samplingFields)
	if err != nil {
		return err
	}
	tokens, err := s.promptTokens(req.Prompt)
	if err != nil {
		return err
	}
	return s.generate(w, r, tokens, p, false)
}

// promptTokens reads a completion prompt: a string, an array of one
// string, or an array of token ids (used as given).
func (s *Server) promptTokens(raw json.RawMessage) ([]int32, error) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return s.encodePrompt(text)
	}
	var texts []string
	if err := json.Unmarshal(raw, &texts); err == nil {
		if len(texts) != 1 {
			return nil, badRequest("prompt", "%d prompts: only one prompt per request is supported", len(texts))
		}
		return s.encodePrompt(texts[0])
	}
	var ids []int32
	if err := json.Unmarshal(raw, &ids); err == nil && len(ids) > 0 {
		n := int32(s.tok.NumTokens())
		for _, id := range ids {
			if id < 0 || id >= n {
				return nil, badRequest("prompt", "token id %d is outside the vocabulary [0, %d)", id, n)
			}
		}
		return ids, nil
	}
	return nil, badRequest("prompt", "prompt must be a string, an array of one string or an array of token ids")
}

func (s *Server) encodePrompt(text string) ([]int32, error) {
	toks := s.tok.Encode(text, true, true)
	if len(toks) == 0 {
		return nil, badRequest("prompt", "the prompt is empty")
	}
	return toks, nil
}

// generate runs tokens through the scheduler and writes the response in
// the chat or completion shape, streaming or not.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, tokens []int32, p params, isChat bool) error {
	if p.n > 1 {
		return s.generateN(w, r, tokens, p, isChat, p.n) // multi.go
	}
	start := s.now()
	info := infoOf(r)
	info.promptTokens = len(tokens)
	if err := s.waitCovered(r.Context()); err != nil {
		if r.Context().Err() != nil {
			return nil // the client went away while waiting
		}
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	isEOG := s.tok.IsEOG
	if p.ignoreEOS {
		isEOG = nil
	}
	st, err := s.sched.Submit(ctx, &scheduler.Request{
		Prompt: tokens, MaxTokens: p.maxTokens, Sampler: p.sampler, IsEOG: isEOG,
		Grammar: p.grammar, Vocab: p.vocab, Logprobs: p.logprobs, TopLogprobs: p.topLogprobs,
	})
	if err != nil {
		return err
	}
	out := &responder{s: s, w: w, isChat: isChat, stream: p.stream, includeUsage: p.includeUsage,
		created: start.Unix(), id: newID(isChat), parse: p.output}
	if p.logprobs {
		out.lp = &logprobAcc{s: s, isChat: isChat}
	}
	dec := s.newDecoder(p.output != nil)
	stops := stopper{stops: p.stop}
	generated := 0
	reason := ""
	var failure error
	ping := s.pinger(p.stream) // keepalive.go
	defer ping.stop()
	defer func() {
		info.outputTokens = generated
		s.metrics.request(info.ttft, s.now().Sub(start), generated, reason != "")
	}()
loop:
	for {
		var ev scheduler.Event
		select {
		case ev = <-st.Events:
		case <-ping.C:
			if err := out.ping(); err != nil {
				return err
			}
			continue
		case <-r.Context().Done():
			return nil // the client went away; the scheduler drops the sequence
		}
		if ev.Done {
			switch ev.Reason {
			case scheduler.FinishStop:
				reason = "stop"
			case scheduler.FinishLength:
				reason = "length"
			case scheduler.FinishCancelled:
				if r.Context().Err() != nil {
					return nil // the client went away: nobody to answer
				}
				failure = ev.Err
			default:
				failure = ev.Err
			}
			break loop
		}
		if generated == 0 {
			info.ttft = s.now().Sub(start)
			ping.stop()
		}
		generated++
		out.lp.add(ev)
		text, hit := stops.feed(dec.Add(ev.Token))
		if err := out.text(text); err != nil {
			return err
		}
		if hit {
			reason = "stop"
			cancel() // frees the slot at the scheduler's next step
			break loop
		}
	}
	if failure == nil && reason == "" {
		failure = errors.New("the stream ended without a reason")
	}
	if failure != nil {
		return out.fail(fmt.Errorf("generation failed: %w", failure))
	}
	if !stops.hit {
		text, _ := stops.feed(dec.Flush())
		if err := out.text(text + stops.flush()); err != nil {
			return err
		}
	}
	u := usage{PromptTokens: len(tokens), CompletionTokens: generated, TotalTokens: len(tokens) + generated}
	return out.finish(reason, u)
}

// waitCovered waits up to WaitReady for every routed expert to be
// runnable (a request arriving before the expert nodes joined), then
// fails with 503 + Retry-After naming an uncovered expert.
func (s *Server) waitCovered(ctx context.Context) error {
	if s.cov == nil {
		return nil
	}
	c := s.cov.Coverage()
	if c.Covered() {
		return nil
	}
	if s.cfg.WaitReady > 0 {
		s.metrics.waiting.Inc()
		defer s.metrics.waiting.Dec()
		deadline := time.NewTimer(s.cfg.WaitReady)
		defer deadline.Stop()
		tick := time.NewTicker(readyPoll)
		defer tick.Stop()
		for !c.Covered() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				return unavailable("not ready after waiting %v: %s (%d experts uncovered); retry later",
					s.cfg.WaitReady, c.Reason(), c.Uncovered)
			case <-tick.C:
				c = s.cov.Coverage()
			}
		}
		return nil
	}
	return unavailable("not ready: %s (%d experts uncovered); retry later", c.Reason(), c.Uncovered)
}

// readyPoll is how often a waiting request checks coverage.
const readyPoll = 50 * time.Millisecond

// newDecoder returns a streaming decoder for generated text. The
// decoder drops the leading space of the first token of a text, which is
// right for a whole text but not for a continuation (" park" after
// "went to the"): priming it with a newline token makes every generated
// token's text come out whole, as llama-server's per-token pieces do.
// special shows control tokens as their text (tool-call and reasoning
// markers the output parser reads).
func (s *Server) newDecoder(special bool) *tokenizer.Decoder {
	d := s.tok.NewDecoder(special)
	if nl := s.tok.NL(); nl >= 0 {
		d.Add(nl)
	}
	return d
}

// stopper holds back text that may begin a stop string and cuts the
// output at the first stop string.
type stopper struct {
	stops   []string
	pending string
	hit     bool
}

// feed adds text and returns what is final; hit reports a stop string
// (the returned text then ends just before it).
func (st *stopper) feed(text string) (string, bool) {
	if len(st.stops) == 0 {
		return text, false
	}
	all := st.pending + text
	cut := -1
	for _, s := range st.stops {
		if i := strings.Index(all, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		st.pending, st.hit = "", true
		return all[:cut], true
	}
	keep := 0
	for _, s := range st.stops {
		for k := min(len(s)-1, len(all)); k > keep; k-- {
			if strings.HasPrefix(s, all[len(all)-k:]) {
				keep = k
				break
			}
		}
	}
	st.pending = all[len(all)-keep:]
	return all[:len(all)-keep], false
}

// flush returns the text still held back.
func (st *stopper) flush() string {
	p := st.pending
	st.pending = ""
	return p
}

func newID(isChat bool) string {
	prefix := "cmpl-"
	if isChat {
		prefix = "chatcmpl-"
	}
	return fmt.Sprintf("%s%016x%016x", prefix, rand.Uint64(), rand.Uint64())
}

func randomSeed() uint64 { return rand.Uint64() }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
