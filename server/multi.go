package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/inference-x/inference-x/server/scheduler"
	"github.com/inference-x/inference-x/tokenizer"
	"github.com/inference-x/inference-x/toolcall"
)

// choiceSeed derives choice i's seed from the request's: choice 0 keeps
// it, so n = 1 and the first of n choices draw the same text.
func choiceSeed(seed uint64, i int) uint64 { return seed + uint64(i)*0x9e3779b97f4a7c15 }

// choiceState is one of n choices in flight.
type choiceState struct {
	cancel    context.CancelFunc
	dec       *tokenizer.Decoder
	stops     stopper
	lp        *logprobAcc
	sp        *streamParse // tool calls and reasoning of a streamed chat choice, or nil
	text      strings.Builder
	generated int
	reason    string
	done      bool
}

type choiceEvent struct {
	i  int
	ev scheduler.Event
}

// generateN answers a request with n > 1: n scheduler requests with the
// same prompt and seeds from choiceSeed decode together in the batch;
// choices[i] carries index i (streamed chunks too); usage counts the
// prompt once and sums the completion tokens. One choice failing fails
// the request.
func (s *Server) generateN(w http.ResponseWriter, r *http.Request, tokens []int32, p params, isChat bool, n int) error {
	start := s.now()
	info := infoOf(r)
	info.promptTokens = len(tokens)
	if err := s.waitCovered(r.Context()); err != nil {
		if r.Context().Err() != nil {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	isEOG := s.tok.IsEOG
	if p.ignoreEOS {
		isEOG = nil
	}
	merged := make(chan choiceEvent, 16)
	cs := make([]*choiceState, n)
	for i := range n {
		cctx, ccancel := context.WithCancel(ctx)
		sc := p.sampler
		sc.Seed = choiceSeed(p.sampler.Seed, i)
		st, err := s.sched.Submit(cctx, &scheduler.Request{
			Prompt: tokens, MaxTokens: p.maxTokens, Sampler: sc, IsEOG: isEOG,
			Grammar: p.grammar, Vocab: p.vocab, Logprobs: p.logprobs, TopLogprobs: p.topLogprobs,
		})
		if err != nil {
			ccancel()
			return err // the deferred cancel ends the choices submitted
		}
		c := &choiceState{cancel: ccancel, dec: s.newDecoder(p.output != nil), stops: stopper{stops: p.stop}}
		if isChat && p.stream && p.output != nil {
			c.sp = p.output.stream()
		}
		defer ccancel()
		if p.logprobs {
			c.lp = &logprobAcc{s: s, isChat: isChat}
		}
		cs[i] = c
		go func() {
			for ev := range st.Events {
				select {
				case merged <- choiceEvent{i, ev}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	out := &responder{s: s, w: w, isChat: isChat, stream: p.stream, includeUsage: p.includeUsage,
		created: start.Unix(), id: newID(isChat)}
	// chunk writes a streamed chunk for choice i.
	chunk := func(i int, text *string, reason *string) error {
		if !out.begun {
			if err := out.begin(); err != nil {
				return err
			}
			if isChat { // begin opened choice 0; open the others
				for k := 1; k < n; k++ {
					empty := ""
					if err := out.event(out.envelope([]any{chatChoice{Index: k, Delta: &chatDelta{Role: "assistant", Content: &empty}}})); err != nil {
						return err
					}
				}
			}
		}
		lp := cs[i].lp.take()
		if sp := cs[i].sp; sp != nil {
			// Parsed output: tool-call and reasoning deltas, as in generate.
			var evs []toolcall.Event
			if text != nil {
				evs = sp.st.Feed(*text)
			}
			if reason != nil {
				more, err := sp.st.Close()
				if err != nil {
					s.log.Debug("tool-call output", "err", err)
				}
				evs = append(evs, more...)
			}
			ds := sp.deltas(evs) // counts the calls
			if reason != nil && sp.calls > 0 && *reason == "stop" {
				r := "tool_calls"
				reason = &r
			}
			for _, d := range ds {
				if err := out.event(out.envelope([]any{chatChoice{Index: i, Delta: &d, Logprobs: lp}})); err != nil {
					return err
				}
				lp = nil
			}
			if reason == nil {
				return nil
			}
			return out.event(out.envelope([]any{chatChoice{Index: i, Delta: &chatDelta{}, Logprobs: lp, FinishReason: reason}}))
		}
		if isChat {
			return out.event(out.envelope([]any{chatChoice{Index: i, Delta: &chatDelta{Content: text}, Logprobs: lp, FinishReason: reason}}))
		}
		t := ""
		if text != nil {
			t = *text
		}
		return out.event(out.envelope([]any{completionChoice{Index: i, Text: t, Logprobs: lp, FinishReason: reason}}))
	}
	generated, left := 0, n
	var failure error
	ping := s.pinger(p.stream)
	defer ping.stop()
	defer func() {
		info.outputTokens = generated
		s.metrics.request(info.ttft, s.now().Sub(start), generated, failure == nil && left == 0)
	}()
	for left > 0 && failure == nil {
		var ce choiceEvent
		select {
		case ce = <-merged:
		case <-ping.C:
			if err := out.ping(); err != nil {
				return err
			}
			continue
		case <-r.Context().Done():
			return nil
		}
		c := cs[ce.i]
		if c.done {
			continue
		}
		ev := ce.ev
		if ev.Done {
			switch ev.Reason {
			case scheduler.FinishStop:
				c.reason = "stop"
			case scheduler.FinishLength:
				c.reason = "length"
			default:
				if r.Context().Err() != nil {
					return nil
				}
				failure = ev.Err
				if failure == nil {
					failure = errors.New("a choice ended without a reason")
				}
				continue
			}
			c.done = true
			left--
			if !c.stops.hit {
				text, _ := c.stops.feed(c.dec.Flush())
				text += c.stops.flush()
				if !p.stream {
					c.text.WriteString(text)
				} else if text != "" {
					if err := chunk(ce.i, &text, nil); err != nil {
						return err
					}
				}
			}
			if p.stream {
				if err := chunk(ce.i, nil, &c.reason); err != nil {
					return err
				}
			}
			continue
		}
		if generated == 0 {
			info.ttft = s.now().Sub(start)
			ping.stop()
		}
		generated++
		c.generated++
		c.lp.add(ev)
		text, hit := c.stops.feed(c.dec.Add(ev.Token))
		if !p.stream {
			c.text.WriteString(text)
		} else if text != "" {
			if err := chunk(ce.i, &text, nil); err != nil {
				return err
			}
		}
		if hit {
			c.reason, c.done = "stop", true
			left--
			c.cancel() // frees its slot at the scheduler's next step
			if p.stream {
				if err := chunk(ce.i, nil, &c.reason); err != nil {
					return err
				}
			}
		}
	}
	if failure != nil {
		return out.fail(fmt.Errorf("generation failed: %w", failure))
	}
	u := usage{PromptTokens: len(tokens), CompletionTokens: generated, TotalTokens: len(tokens) + generated}
	if p.stream {
		if p.includeUsage {
			resp := out.envelope([]any{})
			resp.Usage = &u
			if err := out.event(resp); err != nil {
				return err
			}
		}
		return out.done()
	}
	choices := make([]any, n)
	for i, c := range cs {
		reason := c.reason
		if isChat && p.output != nil {
			msg, finish, err := p.output.assemble(c.text.String(), reason)
			if err != nil {
				s.log.Debug("tool-call output", "err", err)
			}
			choices[i] = chatChoice{Index: i, Message: &msg, Logprobs: c.lp.take(), FinishReason: &finish}
		} else if isChat {
			text := c.text.String()
			choices[i] = chatChoice{Index: i, Message: &chatMessageOut{Role: "assistant", Content: &text}, Logprobs: c.lp.take(), FinishReason: &reason}
		} else {
			choices[i] = completionChoice{Index: i, Text: c.text.String(), Logprobs: c.lp.take(), FinishReason: &reason}
		}
	}
	resp := out.envelope(choices)
	resp.Usage = &u
	return writeJSON(w, resp)
}
