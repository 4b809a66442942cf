package toolcall

import "strings"

// EventKind says what an Event carries.
type EventKind int

// Event kinds.
const (
	ContentDelta   EventKind = iota // Text is more content
	ReasoningDelta                  // Text is more reasoning (reasoning_content)
	ToolCallDelta                   // a delta.tool_calls entry
)

// Event is one piece of a streamed output. A ToolCallDelta's first event
// for an Index carries ID and Name (OpenAI's first delta.tool_calls entry);
// every one may carry an Arguments fragment.
type Event struct {
	Kind      EventKind
	Text      string
	Index     int
	ID, Name  string
	Arguments string
}

// Stream parses an output as it is generated. It re-reads the text so far
// at each Feed (outputs are small next to a forward pass) and sends what
// became certain: text that may start a marker is held back until decided.
// Not safe for concurrent use.
type Stream struct {
	f                  Format
	buf                strings.Builder
	content, reasoning int // lengths sent
	calls              []Call
	done               bool
}

// NewStream starts a stream in format f.
func NewStream(f Format) *Stream { return &Stream{f: f} }

// Feed adds a delta of generated text and returns the events it decides.
func (s *Stream) Feed(delta string) []Event {
	if s.done {
		return nil
	}
	s.buf.WriteString(delta)
	return s.diff(s.f.run(s.buf.String(), false))
}

// Close ends the output: held-back text is decided (a partial marker
// becomes content) and the error is Parse's (ErrIncomplete, ErrArguments).
func (s *Stream) Close() ([]Event, error) {
	if s.done {
		return nil, nil
	}
	r := s.f.run(s.buf.String(), true)
	ev := s.diff(r)
	s.done = true
	return ev, r.err
}

// Calls returns the calls sent so far (complete after Close).
func (s *Stream) Calls() []Call { return append([]Call(nil), s.calls...) }

func (s *Stream) diff(r result) []Event {
	var ev []Event
	if len(r.reasoning) > s.reasoning {
		ev = append(ev, Event{Kind: ReasoningDelta, Text: r.reasoning[s.reasoning:]})
		s.reasoning = len(r.reasoning)
	}
	if len(r.content) > s.content {
		ev = append(ev, Event{Kind: ContentDelta, Text: r.content[s.content:]})
		s.content = len(r.content)
	}
	for i, c := range r.calls {
		if i >= len(s.calls) {
			id := c.ID
			if id == "" {
				id = s.f.id(i)
			}
			s.calls = append(s.calls, Call{ID: id, Name: c.Name})
			ev = append(ev, Event{Kind: ToolCallDelta, Index: i, ID: id, Name: c.Name, Arguments: c.Arguments})
			s.calls[i].Arguments = c.Arguments
			continue
		}
		if sent := s.calls[i].Arguments; len(c.Arguments) > len(sent) {
			ev = append(ev, Event{Kind: ToolCallDelta, Index: i, Arguments: c.Arguments[len(sent):]})
			s.calls[i].Arguments = c.Arguments
		}
	}
	return ev
}
