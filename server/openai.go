package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"strings"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/grammar"
	"github.com/inference-x/inference-x/model"
)

// samplingFields are the generation fields both endpoints share. Pointers
// tell a field left out from a zero.
type samplingFields struct {
	Model               string          `json:"model"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	MinP                *float64        `json:"min_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	RepeatPenalty       *float64        `json:"repeat_penalty"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	constraintFields
	llamaFields
}

// chatRequest is a POST /v1/chat/completions body.
type chatRequest struct {
	samplingFields
	Messages []chatMessage   `json:"messages"`
	Tools    json.RawMessage `json:"tools"`
	toolFields
	// ChatTemplateKwargs are extra template variables (llama-server's
	// chat_template_kwargs, e.g. {"enable_thinking": false}).
	ChatTemplateKwargs map[string]json.RawMessage `json:"chat_template_kwargs"`
}

type chatMessage struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	Name             string          `json:"name"`
	ToolCallID       string          `json:"tool_call_id"`
	ReasoningContent string          `json:"reasoning_content"`
	ToolCalls        []struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		} `json:"function"`
	} `json:"tool_calls"`
}

// completionRequest is a POST /v1/completions body.
type completionRequest struct {
	samplingFields
	Prompt json.RawMessage `json:"prompt"`
}

// errBodyTimeout answers a request whose body did not arrive within
// Config.Timeout.
var errBodyTimeout = newError(http.StatusRequestTimeout, "invalid_request_error", "request_timeout",
	"the request body did not arrive in time (the server's --timeout)")

// decodeBody reads a JSON body into v, rejecting trailing data. The
// Content-Type is not checked (curl -d sends form encoding), as
// llama-server does not.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errorsAs(err, &mbe) {
			return err
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errBodyTimeout
		}
		return badRequest("", "request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("", "request body has data after the JSON object")
	}
	return nil
}

// params are a request's validated generation settings.
type params struct {
	sampler      model.SamplerConfig
	maxTokens    int
	stop         []string
	stream       bool
	includeUsage bool
	// grammar constrains the output (grammar, json_schema,
	// response_format), over vocab; nil: unconstrained.
	grammar *grammar.Grammar
	vocab   *grammar.Vocab
	// output reads tool calls and reasoning out of a chat output (tools.go);
	// nil: all content.
	output *outputParse
	// ignoreEOS: end-of-generation tokens are banned and end nothing.
	ignoreEOS bool
	// logprobs asks for each token's logprob and topLogprobs alternatives.
	logprobs    bool
	topLogprobs int
	// n is the number of choices (multi.go answers n > 1).
	n int
}

// params validates the shared fields against the server's defaults.
func (s *Server) params(f *samplingFields) (params, error) {
	p := params{sampler: s.cfg.Sampler, maxTokens: s.cfg.MaxTokens, stream: f.Stream}
	if err := s.checkModel(f.Model); err != nil {
		return p, err
	}
	p.n = 1
	if f.N != nil {
		slots := 1
		if s.sched != nil {
			slots = s.sched.Config().Slots
		}
		if *f.N < 1 || *f.N > slots {
			return p, badRequest("n", "n = %d must be in [1, %d] (the server's --slots)", *f.N, slots)
		}
		p.n = *f.N
	}
	if f.StreamOptions != nil {
		if !f.Stream {
			return p, badRequest("stream_options", "stream_options is only allowed with stream: true")
		}
		p.includeUsage = f.StreamOptions.IncludeUsage
	}
	max := f.MaxTokens
	if f.MaxCompletionTokens != nil {
		max = f.MaxCompletionTokens
	}
	if max != nil {
		if *max < 0 {
			return p, badRequest("max_tokens", "max_tokens %d must be >= 0", *max)
		}
		p.maxTokens = *max
		if *max == 0 {
			p.maxTokens = -1 // treated as unlimited, as llama-server does for 0 and -1
		}
	}
	sc := &p.sampler
	if v := f.Temperature; v != nil {
		if *v < 0 || *v > 2 || math.IsNaN(*v) {
			return p, badRequest("temperature", "temperature %v must be in [0, 2]", *v)
		}
		sc.Temperature = float32(*v)
	}
	if v := f.TopP; v != nil {
		if *v < 0 || *v > 1 || math.IsNaN(*v) {
			return p, badRequest("top_p", "top_p %v must be in [0, 1]", *v)
		}
		sc.TopP = float32(*v)
	}
	if v := f.TopK; v != nil {
		if *v < 0 {
			return p, badRequest("top_k", "top_k %d must be >= 0", *v)
		}
		sc.TopK = *v
	}
	if v := f.MinP; v != nil {
		if *v < 0 || *v > 1 || math.IsNaN(*v) {
			return p, badRequest("min_p", "min_p %v must be in [0, 1]", *v)
		}
		sc.MinP = float32(*v)
	}
	for _, pen := range []struct {
		name string
		v    *float64
		dst  *float32
	}{{"presence_penalty", f.PresencePenalty, &sc.Presence}, {"frequency_penalty", f.FrequencyPenalty, &sc.Frequency}} {
		if pen.v != nil {
			if *pen.v < -2 || *pen.v > 2 || math.IsNaN(*pen.v) {
				return p, badRequest(pen.name, "%s %v must be in [-2, 2]", pen.name, *pen.v)
			}
			*pen.dst = float32(*pen.v)
		}
	}
	if v := f.RepeatPenalty; v != nil {
		if *v <= 0 || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return p, badRequest("repeat_penalty", "repeat_penalty %v must be > 0", *v)
		}
		sc.Repeat = float32(*v)
	}
	if f.Seed != nil {
		sc.Seed = uint64(*f.Seed)
	} else if !s.cfg.FixedSeed {
		sc.Seed = randomSeed()
	}
	stop, err := parseStop(f.Stop, s.cfg.MaxStop)
	if err != nil {
		return p, err
	}
	p.stop = stop
	if err := s.extraParams(f, &p); err != nil {
		return p, err
	}
	if p.grammar, p.vocab, err = s.constraint(&f.constraintFields); err != nil {
		return p, err
	}
	return p, nil
}

// parseStop reads "stop": a string, an array of strings, or null.
func parseStop(raw json.RawMessage, limit int) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, badRequest("stop", "stop must be a string or an array of strings")
	}
	if len(many) > limit {
		return nil, badRequest("stop", "%d stop strings: at most %d", len(many), limit)
	}
	out := many[:0]
	for _, s := range many {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// chatMessages converts the request's messages for the template: content
// parts are joined into one text (images are not supported), tool-call
// arguments sent as a JSON string are decoded into the object templates
// expect (as llama-server does).
func chatMessages(in []chatMessage) ([]chat.Message, error) {
	if len(in) == 0 {
		return nil, badRequest("messages", "messages must hold at least one message")
	}
	out := make([]chat.Message, len(in))
	for i, m := range in {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return nil, badRequest("messages", "messages[%d]: unknown role %q", i, m.Role)
		}
		role := m.Role
		if role == "developer" {
			role = "system"
		}
		text, err := contentText(m.Content)
		if err != nil {
			return nil, badRequest("messages", "messages[%d].content: %v", i, err)
		}
		cm := chat.Message{Role: role, Content: text, Name: m.Name, ToolCallID: m.ToolCallID, ReasoningContent: m.ReasoningContent}
		for _, tc := range m.ToolCalls {
			args := bytes.TrimSpace(tc.Function.Arguments)
			var s string
			if json.Unmarshal(args, &s) == nil {
				if json.Valid([]byte(s)) && strings.HasPrefix(strings.TrimSpace(s), "{") {
					args = json.RawMessage(s)
				}
			}
			if len(args) == 0 {
				args = json.RawMessage("{}")
			}
			typ := tc.Type
			if typ == "" {
				typ = "function"
			}
			cm.ToolCalls = append(cm.ToolCalls, chat.ToolCall{ID: tc.ID, Type: typ,
				Function: chat.FunctionCall{Name: tc.Function.Name, Arguments: args}})
		}
		out[i] = cm
	}
	return out, nil
}

// contentText reads a message's content: a string, null, or an array of
// parts of which the text parts are joined.
func contentText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errString("must be a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", errString("content part type " + p.Type + " is not supported (text only)")
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

type errString string

func (e errString) Error() string { return string(e) }

// usage is the OpenAI usage object.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// writeJSON writes v as a 200 JSON response.
func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
