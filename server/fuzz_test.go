package server

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/inference-x/inference-x/chat"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/testenv"
	"github.com/inference-x/inference-x/tokenizer"
)

// fuzzTokenizer is stories260K's tokenizer (grammars compile against its
// vocabulary).
func fuzzTokenizer(f *testing.F) *tokenizer.Tokenizer {
	gf, err := gguf.Open(filepath.Join(testenv.Shared(f, "models/stories260K"), "stories260K.gguf"))
	if err != nil {
		f.Fatal(err)
	}
	defer gf.Close()
	tok, err := tokenizer.New(gf)
	if err != nil {
		f.Fatal(err)
	}
	return tok
}

// FuzzRequest feeds arbitrary bodies through request decoding, field
// validation, message conversion and the chatml template: no panic, and
// every failure is an API error with a status.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b"],"temperature":0.5}`,
		`{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"x","function":{"name":"f","arguments":"{\"a\":1}"}}]}]}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}],"n":2}`,
		`{"prompt":[1,2,3],"max_tokens":-1,"stream_options":{"include_usage":true}}`,
		`{"stop":"x","top_p":2,"min_p":-1,"seed":-5}`,
		`{"prompt":"a","grammar":"root ::= [a-z]{2,3} \"!\""}`,
		`{"messages":[],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"enum":[1,2]}}}}}}`,
		`{"response_format":{"type":"json_object"},"json_schema":{"type":"array","maxItems":2}}`,
		`{"logit_bias":{"1":-100,"x":2},"n_predict":3,"max_tokens":4,"ignore_eos":true}`,
		`{"logprobs":3,"top_logprobs":25,"n_probs":-1,"min_keep":-2,"repetition_penalty":0}`,
		`[]`, `{"messages":`, ``,
	} {
		f.Add([]byte(s))
	}
	cfg := DefaultConfig()
	cfg.ModelID = "m"
	s := &Server{cfg: cfg, tok: fuzzTokenizer(f)}
	tmpl := chat.Builtin(chat.ChatML)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
		var req chatRequest
		err := decodeBody(r, &req)
		if err == nil {
			_, err = s.params(&req.samplingFields)
		}
		if err == nil {
			var msgs []chat.Message
			if msgs, err = chatMessages(req.Messages); err == nil {
				_, err = tmpl.Render(msgs, chat.RenderOptions{})
			}
		}
		if err != nil {
			if ae := toAPIError(err); ae.Status < 400 || ae.Message == "" {
				t.Fatalf("error %v maps to %+v", err, ae)
			}
		}
		var c completionRequest
		if json.Unmarshal(body, &c) == nil {
			parseStop(c.Stop, cfg.MaxStop)
		}
	})
}
