package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"

	"github.com/inference-x/inference-x/model"
)

// Embedder computes embeddings: the mean over a text's tokens of the
// model's final hidden state (after the output norm, before the LM head),
// L2-normalised, as llama-server --embeddings --pooling mean does. It has
// its own Runner and sequence, so embeddings never wait for a generation
// step nor slow the scheduler's batch; a mutex runs one input at a time.
type Embedder struct {
	mu       sync.Mutex
	r        *model.Runner
	seq      *model.Sequence
	b        model.Batch
	sum      []float64
	embd     int
	maxBatch int
}

// NewEmbedder allocates a Runner (opt: threads, batch size, the experts
// backend) and one sequence of ctx positions (the longest input) with a
// kv cache.
func NewEmbedder(m *model.Model, ctx int, kv model.KVType, opt model.Options) (*Embedder, error) {
	seq, err := m.NewSequence(ctx, kv)
	if err != nil {
		return nil, err
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = model.DefaultOptions().MaxBatch
	}
	return &Embedder{r: m.NewRunner(opt), seq: seq, embd: m.Config.Embd, maxBatch: opt.MaxBatch,
		sum: make([]float64, m.Config.Embd)}, nil
}

// Close frees the Runner.
func (e *Embedder) Close() { e.r.Close() }

// Ctx returns the most tokens one input may have.
func (e *Embedder) Ctx() int { return e.seq.Ctx() }

// Embed returns the normalised mean-pooled embedding of tokens.
func (e *Embedder) Embed(ctx context.Context, tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("embeddings: empty input")
	}
	if len(tokens) > e.seq.Ctx() {
		return nil, fmt.Errorf("%w: %d tokens, at most %d", errInputTooLong, len(tokens), e.seq.Ctx())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq.Len = 0
	clear(e.sum)
	for start := 0; start < len(tokens); start += e.maxBatch {
		end := min(start+e.maxBatch, len(tokens))
		e.b.Reset()
		for i := start; i < end; i++ {
			e.b.Add(e.seq, tokens[i], i, true)
		}
		h, err := e.r.Hidden(ctx, &e.b)
		if err != nil {
			return nil, err
		}
		for row := 0; row < end-start; row++ {
			for k, v := range h[row*e.embd : (row+1)*e.embd] {
				e.sum[k] += float64(v)
			}
		}
	}
	out := make([]float32, e.embd)
	var norm float64
	for k, v := range e.sum {
		v /= float64(len(tokens))
		e.sum[k] = v
		norm += v * v
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		norm = 1
	}
	for k, v := range e.sum {
		out[k] = float32(v / norm)
	}
	return out, nil
}

var errInputTooLong = errors.New("input is longer than the context")

// embeddingRequest is a POST /v1/embeddings body.
type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
}

type embeddingObject struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

// embeddings serves POST /v1/embeddings in OpenAI's shape.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) error {
	if s.embed == nil {
		return newError(http.StatusNotImplemented, "not_supported_error", "not_supported",
			"This server does not support embeddings. Start it with `--embeddings`")
	}
	var req embeddingRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if err := s.checkModel(req.Model); err != nil {
		return err
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return badRequest("encoding_format", "encoding_format %q: use float or base64", req.EncodingFormat)
	}
	inputs, err := s.embeddingInputs(req.Input)
	if err != nil {
		return err
	}
	if err := s.waitCovered(r.Context()); err != nil {
		if r.Context().Err() != nil {
			return nil // the client went away while waiting
		}
		return err
	}
	data := make([]embeddingObject, len(inputs))
	total := 0
	for i, toks := range inputs {
		total += len(toks)
		v, err := s.embed.Embed(r.Context(), toks)
		if errors.Is(err, errInputTooLong) {
			return newError(http.StatusBadRequest, "invalid_request_error", "context_length_exceeded", "input[%d]: %v", i, err)
		}
		if err != nil {
			if r.Context().Err() != nil {
				return nil // the client went away: nobody to answer
			}
			return fmt.Errorf("embedding input %d: %w", i, err)
		}
		data[i] = embeddingObject{Object: "embedding", Index: i, Embedding: v}
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(v))
			for k, f := range v {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(f))
			}
			data[i].Embedding = base64.StdEncoding.EncodeToString(b)
		}
	}
	infoOf(r).promptTokens = total
	return writeJSON(w, struct {
		Object string            `json:"object"`
		Data   []embeddingObject `json:"data"`
		Model  string            `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Data: data, Model: s.cfg.ModelID, Usage: struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}{total, total}})
}

// maxEmbeddingInputs bounds the inputs of one request (OpenAI's limit).
const maxEmbeddingInputs = 2048

// embeddingInputs reads "input": a string, an array of strings, an array
// of token ids or an array of token-id arrays; texts are tokenized with
// the special tokens (BOS) the vocabulary adds.
func (s *Server) embeddingInputs(raw json.RawMessage) ([][]int32, error) {
	raw = bytes.TrimSpace(raw)
	bad := badRequest("input", "input must be a string, an array of strings, an array of token ids or an array of token-id arrays")
	var texts []string
	var many [][]int32
	var elems []json.RawMessage
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, badRequest("input", "input is required")
	case raw[0] == '"':
		var one string
		if json.Unmarshal(raw, &one) != nil {
			return nil, bad
		}
		texts = []string{one}
	case json.Unmarshal(raw, &elems) != nil:
		return nil, bad
	case len(elems) == 0:
	case elems[0][0] == '"': // (decoded elements are never empty)
		if json.Unmarshal(raw, &texts) != nil {
			return nil, bad
		}
	case elems[0][0] == '[':
		if json.Unmarshal(raw, &many) != nil {
			return nil, bad
		}
	default:
		var ids []int32
		if json.Unmarshal(raw, &ids) != nil {
			return nil, bad
		}
		many = [][]int32{ids}
	}
	for _, t := range texts {
		many = append(many, s.tok.Encode(t, true, true))
	}
	if len(many) == 0 {
		return nil, badRequest("input", "input is empty")
	}
	if len(many) > maxEmbeddingInputs {
		return nil, badRequest("input", "%d inputs: at most %d per request", len(many), maxEmbeddingInputs)
	}
	n := int32(s.tok.NumTokens())
	for i, toks := range many {
		if len(toks) == 0 {
			return nil, badRequest("input", "input[%d] is empty", i)
		}
		for _, id := range toks {
			if id < 0 || id >= n {
				return nil, badRequest("input", "input[%d]: token id %d is outside the vocabulary [0, %d)", i, id, n)
			}
		}
	}
	return many, nil
}
