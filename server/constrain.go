package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/inference-x/inference-x/grammar"
)

// constraintFields are the constrained-decoding fields both endpoints
// share: llama-server's grammar (GBNF) and json_schema, OpenAI's
// response_format. At most one of them constrains a request.
type constraintFields struct {
	Grammar        *string         `json:"grammar"`
	JSONSchema     json.RawMessage `json:"json_schema"`
	ResponseFormat json.RawMessage `json:"response_format"`
}

// responseFormat is OpenAI's response_format (plus llama-server's
// {"type":"json_object","schema":{...}}).
type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	} `json:"json_schema"`
	Schema json.RawMessage `json:"schema"`
}

// grammarVocab is the model's vocabulary for grammars, built on the
// first constrained request (VocabFromTokenizer: ~170 ms at 152k tokens)
// and shared by all of them.
type grammarVocab struct {
	once  sync.Once
	vocab *grammar.Vocab
	err   error
}

// grammarVocab returns the vocabulary, building it once.
func (s *Server) grammarVocab() (*grammar.Vocab, error) {
	gv := &s.gvocab
	gv.once.Do(func() {
		if s.tok == nil {
			gv.err = errors.New("grammar vocabulary: the server has no tokenizer")
			return
		}
		gv.vocab, gv.err = grammar.VocabFromTokenizer(s.tok)
		if gv.err != nil {
			gv.err = fmt.Errorf("grammar vocabulary: %w", gv.err)
		}
	})
	return gv.vocab, gv.err
}

// isNull reports an absent or null JSON value.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// constraint compiles the request's grammar, json_schema or
// response_format (nil: unconstrained). A bad grammar or schema is a 400
// naming the field with the grammar package's error; more than one
// constraint is a 400.
func (s *Server) constraint(f *constraintFields) (*grammar.Grammar, *grammar.Vocab, error) {
	type source struct {
		param string
		gbnf  string // GBNF, or
		json  []byte // a JSON Schema, or
		obj   bool   // any JSON object
	}
	var srcs []source
	if f.Grammar != nil && *f.Grammar != "" {
		srcs = append(srcs, source{param: "grammar", gbnf: *f.Grammar})
	}
	if !isNull(f.JSONSchema) {
		srcs = append(srcs, source{param: "json_schema", json: f.JSONSchema})
	}
	if !isNull(f.ResponseFormat) {
		var rf responseFormat
		if err := json.Unmarshal(f.ResponseFormat, &rf); err != nil {
			return nil, nil, badRequest("response_format", "response_format must be an object with a type: %v", err)
		}
		switch rf.Type {
		case "text":
		case "json_object":
			if isNull(rf.Schema) {
				srcs = append(srcs, source{param: "response_format", obj: true})
			} else {
				srcs = append(srcs, source{param: "response_format.schema", json: rf.Schema})
			}
		case "json_schema":
			if rf.JSONSchema == nil {
				return nil, nil, badRequest("response_format.json_schema",
					`response_format type "json_schema" needs a json_schema object ({"name": ..., "schema": {...}})`)
			}
			schema := []byte(rf.JSONSchema.Schema)
			if isNull(rf.JSONSchema.Schema) {
				schema = []byte("{}") // no schema: any JSON value, as llama-server
			}
			srcs = append(srcs, source{param: "response_format.json_schema.schema", json: schema})
		case "":
			return nil, nil, badRequest("response_format", "response_format needs a type: text, json_object or json_schema")
		default:
			return nil, nil, badRequest("response_format", "response_format type %q: want text, json_object or json_schema", rf.Type)
		}
	}
	switch len(srcs) {
	case 0:
		return nil, nil, nil
	case 1:
	default:
		return nil, nil, badRequest(srcs[1].param, "%s and %s both constrain the output: give one", srcs[0].param, srcs[1].param)
	}
	src := srcs[0]
	v, err := s.grammarVocab()
	if err != nil {
		return nil, nil, err
	}
	var g *grammar.Grammar
	switch {
	case src.obj:
		g = grammar.JSONObject()
	case src.json != nil:
		g, err = grammar.FromJSONSchema(src.json)
	default:
		g, err = grammar.ParseForVocab(src.gbnf, v)
	}
	if err != nil {
		if errors.Is(err, grammar.ErrSyntax) {
			return nil, nil, badRequest(src.param, "%v", err) // "grammar: line:col: ..."
		}
		return nil, nil, badRequest(src.param, "%s: %v", src.param, err)
	}
	return g, v, nil
}
