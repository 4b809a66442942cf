package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// responder writes one generation in the chat or completion shape: a JSON
// object at the end, or server-sent events as text arrives, ending with
// `data: [DONE]`.
type responder struct {
	s            *Server
	w            http.ResponseWriter
	isChat       bool
	stream       bool
	includeUsage bool
	id           string
	created      int64
	begun        bool // the event stream's header is sent
	// parse reads tool calls and reasoning out of a chat output (tools.go);
	// stream is its streamed state.
	parse *outputParse
	sp    *streamParse

	lp    *logprobAcc     // nil: no logprobs (logprobs.go)
	text_ strings.Builder // the whole text (non-streaming)
	buf   bytes.Buffer
}

type chatMessageOut struct {
	Role             string        `json:"role"`
	Content          *string       `json:"content"` // null when there are only tool calls
	ReasoningContent string        `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallOut `json:"tool_calls,omitempty"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      *chatMessageOut `json:"message,omitempty"`
	Delta        *chatDelta      `json:"delta,omitempty"`
	Logprobs     any             `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type chatDelta struct {
	Role             string        `json:"role,omitempty"`
	Content          *string       `json:"content,omitempty"`
	ReasoningContent *string       `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallOut `json:"tool_calls,omitempty"`
}

type completionChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// response is every body shape: choices hold chatChoice or
// completionChoice values.
type response struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []any  `json:"choices"`
	Usage             *usage `json:"usage,omitempty"`
}

const fingerprint = "inference-x"

func (o *responder) object() string {
	switch {
	case o.isChat && o.stream:
		return "chat.completion.chunk"
	case o.isChat:
		return "chat.completion"
	}
	return "text_completion"
}

func (o *responder) envelope(choices []any) response {
	return response{ID: o.id, Object: o.object(), Created: o.created, Model: o.s.cfg.ModelID,
		SystemFingerprint: fingerprint, Choices: choices}
}

// begin starts the event stream (chat streams open with the role); it is
// called with the first token, so a request that fails before gets a
// plain error response with its status.
func (o *responder) begin() error {
	if o.begun {
		return nil
	}
	o.begun = true
	h := o.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	o.w.WriteHeader(http.StatusOK)
	if o.isChat {
		empty := ""
		return o.event(o.envelope([]any{chatChoice{Delta: &chatDelta{Role: "assistant", Content: &empty}}}))
	}
	return o.flush()
}

// text adds generated text.
func (o *responder) text(t string) error {
	if t == "" {
		return nil
	}
	if !o.stream {
		o.text_.WriteString(t)
		return nil
	}
	if err := o.begin(); err != nil {
		return err
	}
	if o.isChat && o.parse != nil {
		if o.sp == nil {
			o.sp = o.parse.stream()
		}
		return o.deltas(o.sp.deltas(o.sp.st.Feed(t)))
	}
	if o.isChat {
		return o.event(o.envelope([]any{chatChoice{Delta: &chatDelta{Content: &t}, Logprobs: o.lp.take()}}))
	}
	return o.event(o.envelope([]any{completionChoice{Text: t, Logprobs: o.lp.take()}}))
}

// finish ends the response with the finish reason and usage.
func (o *responder) finish(reason string, u usage) error {
	if !o.stream {
		var c any
		if o.isChat && o.parse != nil {
			msg, finish, err := o.parse.assemble(o.text_.String(), reason)
			if err != nil {
				o.s.log.Debug("tool-call output", "err", err)
			}
			c = chatChoice{Message: &msg, Logprobs: o.lp.take(), FinishReason: &finish}
		} else if o.isChat {
			text := o.text_.String()
			c = chatChoice{Message: &chatMessageOut{Role: "assistant", Content: &text}, Logprobs: o.lp.take(), FinishReason: &reason}
		} else {
			c = completionChoice{Text: o.text_.String(), Logprobs: o.lp.take(), FinishReason: &reason}
		}
		resp := o.envelope([]any{c})
		resp.Usage = &u
		return writeJSON(o.w, resp)
	}
	if err := o.begin(); err != nil {
		return err
	}
	if o.isChat && o.parse != nil {
		if o.sp == nil {
			o.sp = o.parse.stream()
		}
		evs, err := o.sp.st.Close()
		if err != nil {
			o.s.log.Debug("tool-call output", "err", err)
		}
		if err := o.deltas(o.sp.deltas(evs)); err != nil {
			return err
		}
		if o.sp.calls > 0 && reason == "stop" {
			reason = "tool_calls"
		}
	}
	lp := o.lp.take()
	var c any = completionChoice{Logprobs: lp, FinishReason: &reason}
	if o.isChat {
		c = chatChoice{Delta: &chatDelta{}, Logprobs: lp, FinishReason: &reason}
	}
	if err := o.event(o.envelope([]any{c})); err != nil {
		return err
	}
	if o.includeUsage {
		resp := o.envelope([]any{})
		resp.Usage = &u
		if err := o.event(resp); err != nil {
			return err
		}
	}
	return o.done()
}

// fail reports err: as the error response when nothing was sent yet,
// else as an error event closing the stream.
func (o *responder) fail(err error) error {
	if !o.stream || !o.begun {
		return err
	}
	ae := toAPIError(err)
	if e := o.event(struct {
		Error *apiError `json:"error"`
	}{ae}); e != nil {
		return e
	}
	return o.done()
}

func (o *responder) event(v any) error {
	o.buf.Reset()
	o.buf.WriteString("data: ")
	enc := json.NewEncoder(&o.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	o.buf.WriteString("\n")
	if _, err := o.w.Write(o.buf.Bytes()); err != nil {
		return err
	}
	return o.flush()
}

func (o *responder) done() error {
	if _, err := o.w.Write([]byte("data: [DONE]\n\n")); err != nil {
		return err
	}
	return o.flush()
}

func (o *responder) flush() error {
	return http.NewResponseController(o.w).Flush()
}

// deltas sends chat deltas, one chunk each.
func (o *responder) deltas(ds []chatDelta) error {
	for i := range ds {
		if err := o.event(o.envelope([]any{chatChoice{Delta: &ds[i]}})); err != nil {
			return err
		}
	}
	return nil
}
