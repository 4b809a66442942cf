package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/inference-x/inference-x/internal/buildinfo"
)

// This file holds llama-server's utility endpoints, in its shapes:
// /tokenize, /detokenize, /apply-template, /props and /slots.

// tokenizeRequest is a POST /tokenize body.
type tokenizeRequest struct {
	// Content is a string, or an array of strings and token ids
	// (llama-server's mixed prompt; add_special applies to the first
	// string only).
	Content    json.RawMessage `json:"content"`
	AddSpecial bool            `json:"add_special"`
	// ParseSpecial recognises control tokens in the text (default true).
	ParseSpecial *bool `json:"parse_special"`
	WithPieces   bool  `json:"with_pieces"`
}

// tokenPiece is a token with its text: a string when the piece is valid
// UTF-8, else its bytes (a part of a multi-byte character), as
// llama-server answers.
type tokenPiece struct {
	ID    int32 `json:"id"`
	Piece any   `json:"piece"`
}

// tokenize serves POST /tokenize: {"tokens": [ids]} or, with_pieces,
// {"tokens": [{"id", "piece"}]}.
func (s *Server) tokenize(w http.ResponseWriter, r *http.Request) error {
	var req tokenizeRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ids, err := s.mixedTokens(req.Content, req.AddSpecial, req.ParseSpecial == nil || *req.ParseSpecial)
	if err != nil {
		return err
	}
	if !req.WithPieces {
		return writeJSON(w, struct {
			Tokens []int32 `json:"tokens"`
		}{ids})
	}
	out := make([]tokenPiece, len(ids))
	for i, id := range ids {
		p := s.tok.TokenToPiece(id, true)
		out[i] = tokenPiece{ID: id, Piece: p}
		if !utf8.ValidString(p) {
			b := make([]int, len(p))
			for k := range len(p) {
				b[k] = int(p[k])
			}
			out[i].Piece = b
		}
	}
	return writeJSON(w, struct {
		Tokens []tokenPiece `json:"tokens"`
	}{out})
}

// mixedTokens reads /tokenize's content: a string, or an array of
// strings (tokenized) and token ids (kept).
func (s *Server) mixedTokens(raw json.RawMessage, addSpecial, parseSpecial bool) ([]int32, error) {
	var text string
	if len(raw) == 0 || json.Unmarshal(raw, &text) == nil {
		return s.tok.Encode(text, addSpecial, parseSpecial), nil
	}
	var parts []json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return nil, badRequest("content", "content must be a string or an array of strings and token ids")
	}
	n := int32(s.tok.NumTokens())
	ids := []int32{}
	for i, p := range parts {
		var id int32
		switch {
		case json.Unmarshal(p, &text) == nil:
			ids = s.tok.AppendEncode(ids, text, addSpecial && i == 0, parseSpecial)
		case json.Unmarshal(p, &id) == nil && id >= 0 && id < n:
			ids = append(ids, id)
		default:
			return nil, badRequest("content", "content[%d] = %s: want a string or a token id in [0, %d)", i, p, n)
		}
	}
	return ids, nil
}

// detokenize serves POST /detokenize: {"tokens": [ids]} -> {"content"},
// the pieces joined (control tokens as their text), as llama-server.
func (s *Server) detokenize(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Tokens []int32 `json:"tokens"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	n := int32(s.tok.NumTokens())
	var b []byte
	for _, id := range req.Tokens {
		if id < 0 || id >= n {
			return badRequest("tokens", "token id %d is outside the vocabulary [0, %d)", id, n)
		}
		b = append(b, s.tok.TokenToPiece(id, true)...)
	}
	return writeJSON(w, struct {
		Content string `json:"content"`
	}{string(b)})
}

// applyTemplate serves POST /apply-template: a chat request's messages
// rendered by the chat template -> {"prompt"}, the text
// /v1/chat/completions would tokenize.
func (s *Server) applyTemplate(w http.ResponseWriter, r *http.Request) error {
	var req chatRequest
	if err := decodeBody(r, &req); err != nil {
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
	return writeJSON(w, struct {
		Prompt string `json:"prompt"`
	}{text})
}

// generationSettings is a slot's settings in /props and /slots.
type generationSettings struct {
	ID           int            `json:"id"`
	IDTask       int            `json:"id_task"`
	NCtx         int            `json:"n_ctx"`
	Speculative  bool           `json:"speculative"`
	IsProcessing bool           `json:"is_processing"`
	NPrompt      int            `json:"n_prompt_tokens,omitempty"`
	Params       samplingParams `json:"params"`
}

// samplingParams are the server's default sampling settings (llama-server's
// names).
type samplingParams struct {
	NPredict         int     `json:"n_predict"`
	Seed             int64   `json:"seed"`
	Temperature      float64 `json:"temperature"`
	TopK             int     `json:"top_k"`
	TopP             float64 `json:"top_p"`
	MinP             float64 `json:"min_p"`
	RepeatPenalty    float64 `json:"repeat_penalty"`
	PresencePenalty  float64 `json:"presence_penalty"`
	FrequencyPenalty float64 `json:"frequency_penalty"`
	Stream           bool    `json:"stream"`
}

func (s *Server) samplingParams() samplingParams {
	c := s.cfg.Sampler
	n := s.cfg.MaxTokens
	if n <= 0 {
		n = -1
	}
	seed := int64(-1)
	if s.cfg.FixedSeed {
		seed = int64(c.Seed)
	}
	return samplingParams{NPredict: n, Seed: seed, Temperature: f32(c.Temperature), TopK: c.TopK,
		TopP: f32(c.TopP), MinP: f32(c.MinP), RepeatPenalty: f32(c.Repeat),
		PresencePenalty: f32(c.Presence), FrequencyPenalty: f32(c.Frequency)}
}

// props serves GET /props: the default generation settings, the number
// of slots, the chat template, the special tokens and the build.
func (s *Server) props(w http.ResponseWriter, _ *http.Request) error {
	cfg := s.sched.Config()
	return writeJSON(w, struct {
		DefaultGenerationSettings generationSettings `json:"default_generation_settings"`
		TotalSlots                int                `json:"total_slots"`
		ModelPath                 string             `json:"model_path"`
		ModelAlias                string             `json:"model_alias"`
		ChatTemplate              string             `json:"chat_template"`
		ChatTemplateEngine        string             `json:"chat_template_engine"`
		BOSToken                  string             `json:"bos_token"`
		EOSToken                  string             `json:"eos_token"`
		BuildInfo                 string             `json:"build_info"`
		Build                     buildinfo.Info     `json:"build"`
		Modalities                map[string]bool    `json:"modalities"`
		Embeddings                bool               `json:"embeddings"`
	}{
		DefaultGenerationSettings: generationSettings{IDTask: -1, NCtx: cfg.Ctx, Params: s.samplingParams()},
		TotalSlots:                cfg.Slots,
		ModelPath:                 s.cfg.ModelPath,
		ModelAlias:                s.cfg.ModelID,
		ChatTemplate:              s.tmpl.Source(),
		ChatTemplateEngine:        s.tmpl.Name(),
		BOSToken:                  s.bos,
		EOSToken:                  s.eos,
		BuildInfo:                 buildinfo.Get().String(),
		Build:                     buildinfo.Get(),
		Modalities:                map[string]bool{"vision": false, "audio": false},
		Embeddings:                s.embed != nil,
	})
}

// slots serves GET /slots: every slot's state, as llama-server.
func (s *Server) slots(w http.ResponseWriter, _ *http.Request) error {
	cfg := s.sched.Config()
	p := s.samplingParams()
	states := s.sched.Slots()
	out := make([]generationSettings, len(states))
	for i, st := range states {
		out[i] = generationSettings{ID: st.ID, IDTask: -1, NCtx: cfg.Ctx, IsProcessing: st.Busy,
			NPrompt: st.PromptTokens, Params: p}
	}
	return writeJSON(w, out)
}

// f32 is x as the float64 its shortest decimal spells (0.8, not
// 0.800000011920929).
func f32(x float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return v
}
