package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/grammar"
	"github.com/inference-x/inference-x/synth"
)

// schemaCases are bounded schemas (every string has a maxLength or a
// fixed form, every array a maxItems, every number bounds, no recursion),
// so any walk through them ends well within max_tokens even on a
// random-weight model: nested objects, arrays, enums, required and
// optional properties, $defs, anyOf/oneOf/allOf, formats, patterns.
var schemaCases = []struct{ name, schema string }{
	{"person", `{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name","age"]}`},
	{"enum", `{"type":"object","properties":{"color":{"enum":["red","green","blue \"dark\""]},"size":{"enum":[1,2,3.5,null,true]}},"required":["color","size"]}`},
	{"optional", `{"type":"object","properties":{"a":{"type":"integer","minimum":0,"maximum":9},"b":{"type":"boolean"},"c":{"type":"string","maxLength":4},"d":{"type":"null"}},"required":["a","c"]}`},
	{"all-optional", `{"type":"object","properties":{"x":{"type":"integer","minimum":0,"maximum":99},"y":{"type":"boolean"}}}`},
	{"const", `{"type":"object","properties":{"kind":{"const":"point"},"v":{"const":{"a":[1,2],"b":null}}},"required":["kind","v"]}`},
	{"nested", `{"type":"object","properties":{"user":{"type":"object","properties":{"id":{"type":"integer","minimum":0,"maximum":999},"tags":{"type":"array","items":{"type":"string","maxLength":5},"maxItems":3}},"required":["id","tags"]}},"required":["user"]}`},
	{"array-of-objects", `{"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"sku":{"type":"string","maxLength":4},"qty":{"type":"integer","minimum":1,"maximum":9}},"required":["sku","qty"]},"minItems":1,"maxItems":2}},"required":["items"]}`},
	{"array-bounds", `{"type":"array","items":{"type":"integer","minimum":-5,"maximum":99},"minItems":2,"maxItems":4}`},
	{"enum-array", `{"type":"array","items":{"enum":["a","b","c"]},"maxItems":5}`},
	{"deep", `{"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"object","properties":{"c":{"enum":["x","y"]}},"required":["c"]}},"required":["b"]}},"required":["a"]}`},
	{"ref-defs", `{"$defs":{"address":{"type":"object","properties":{"street":{"type":"string","maxLength":8},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["street","zip"]}},"type":"object","properties":{"home":{"$ref":"#/$defs/address"},"work":{"$ref":"#/$defs/address"}},"required":["home"]}`},
	{"definitions", `{"definitions":{"pt":{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"minItems":2,"maxItems":2}},"type":"object","properties":{"from":{"$ref":"#/definitions/pt"},"to":{"$ref":"#/definitions/pt"}},"required":["from","to"]}`},
	{"anyOf", `{"type":"object","properties":{"v":{"anyOf":[{"type":"string","maxLength":4},{"type":"integer","minimum":0,"maximum":9},{"type":"null"}]}},"required":["v"]}`},
	{"oneOf", `{"oneOf":[{"type":"object","properties":{"type":{"const":"circle"},"r":{"type":"integer","minimum":1,"maximum":9}},"required":["type","r"]},{"type":"object","properties":{"type":{"const":"rect"},"w":{"type":"integer","minimum":0,"maximum":99},"h":{"type":"integer","minimum":0,"maximum":99}},"required":["type","w","h"]}]}`},
	{"allOf", `{"allOf":[{"type":"object","properties":{"id":{"type":"integer","minimum":0,"maximum":99}},"required":["id"]},{"properties":{"label":{"type":"string","maxLength":5}},"required":["label"]}]}`},
	{"type-union", `{"type":"object","properties":{"note":{"type":["string","null"],"maxLength":6},"flag":{"type":["boolean","null"]}},"required":["note","flag"]}`},
	{"formats", `{"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"time"},"u":{"type":"string","format":"uuid"}},"required":["d","t","u"]}`},
	{"string-length", `{"type":"object","properties":{"s":{"type":"string","minLength":3,"maxLength":8}},"required":["s"]}`},
	{"pattern", `{"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},"slug":{"type":"string","pattern":"^(foo|bar)(-[a-z]{1,4})?$"}},"required":["code","slug"]}`},
	{"ranges", `{"type":"object","properties":{"p":{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10},"neg":{"type":"integer","minimum":-50,"maximum":-10},"ok":{"type":"boolean"}},"required":["p","neg","ok"]}`},
}

// kimiModel writes a small Kimi-K2-shaped MoE (deepseek2 MLA, sigmoid
// routing with bias, a shared expert, a leading dense layer).
func kimiModel(t *testing.T) string {
	t.Helper()
	c, err := synth.Preset("kimi-k2-mini")
	if err != nil {
		t.Fatal(err)
	}
	c.Layers, c.Embd, c.FF, c.Heads, c.Experts, c.ExpertFF, c.Vocab = 2, 256, 512, 4, 16, 64, 4096
	c.QLoraRank, c.KVLoraRank, c.RopeDim, c.NopeDim, c.VHeadDim = 128, 128, 32, 32, 32
	p := filepath.Join(t.TempDir(), "kimi-k2-mini.gguf")
	if _, err := synth.WriteFile(context.Background(), c, synth.Options{Type: "Q8_0", Seed: 7}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJSONSchemaOutputs: on stories260K and a Kimi-shaped MoE, every
// schema's output, greedy (chat) and sampled (completions), parses and
// validates and ends with finish_reason stop (the grammar complete).
func TestJSONSchemaOutputs(t *testing.T) {
	kimi := kimiModel(t)
	for _, mc := range []struct{ name, path string }{{"stories260K", ""}, {"kimi-moe", kimi}} {
		t.Run(mc.name, func(t *testing.T) {
			ts := newTestServer(t, serverOpts{modelPath: mc.path})
			for i, sc := range schemaCases {
				t.Run(sc.name, func(t *testing.T) {
					chat := fmt.Sprintf(`{"messages":[{"role":"user","content":"Give me JSON."}],"max_tokens":400,"temperature":0,`+
						`"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":%s}}}`, sc.schema)
					c := decode[completionBody](t, ts.post(t, "/v1/chat/completions", chat))
					checkJSONChoice(t, "greedy chat", sc.schema, c.Choices[0].Message.Content, c.Choices[0].FinishReason)
					comp := fmt.Sprintf(`{"prompt":"Once upon a time","max_tokens":400,"temperature":1,"seed":%d,`+
						`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":%s}}}`, i+1, sc.schema)
					c = decode[completionBody](t, ts.post(t, "/v1/completions", comp))
					checkJSONChoice(t, "sampled completion", sc.schema, c.Choices[0].Text, c.Choices[0].FinishReason)
				})
			}
		})
	}
}

func checkJSONChoice(t *testing.T, what, schema, text string, finish *string) {
	t.Helper()
	if finish == nil || *finish != "stop" {
		t.Errorf("%s: finish_reason %v, want stop (text %q)", what, finish, text)
	}
	var any any
	if err := json.Unmarshal([]byte(text), &any); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, text, err)
	}
	if err := grammar.Validate([]byte(schema), []byte(text)); err != nil {
		t.Errorf("%s: %q does not validate: %v", what, text, err)
	}
}

// Streamed chat with response_format json_schema: the deltas join into
// JSON that validates and the last chunk says stop; json_object gives an
// object (unbounded: it may also run to max_tokens).
func TestJSONStream(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	streamed := func(body string) (string, string) {
		events, done := sse(t, ts.post(t, "/v1/chat/completions", body))
		if !done {
			t.Fatal("stream did not end with [DONE]")
		}
		var text strings.Builder
		finish := ""
		for _, e := range events {
			var c completionBody
			if err := json.Unmarshal([]byte(e), &c); err != nil {
				t.Fatalf("%s: %v", e, err)
			}
			for _, ch := range c.Choices {
				if ch.Delta.Content != nil {
					text.WriteString(*ch.Delta.Content)
				}
				if ch.FinishReason != nil {
					finish = *ch.FinishReason
				}
			}
		}
		return text.String(), finish
	}
	schema := schemaCases[5].schema // nested
	text, finish := streamed(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":400,"temperature":0.8,"seed":5,"stream":true,` +
		`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":` + schema + `}}}`)
	checkJSONChoice(t, "streamed", schema, text, &finish)
	text, finish = streamed(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":40,"temperature":0.8,"seed":5,"stream":true,` +
		`"response_format":{"type":"json_object"}}`)
	if !strings.HasPrefix(strings.TrimSpace(text), "{") || finish == "stop" && !json.Valid([]byte(text)) || finish != "stop" && finish != "length" {
		t.Errorf("json_object stream: %q finish %q", text, finish)
	}
	// A GBNF grammar on the completions endpoint.
	c := decode[completionBody](t, ts.post(t, "/v1/completions",
		`{"prompt":"Lily","max_tokens":50,"temperature":1,"seed":2,"grammar":"root ::= (\"yes\" | \"no\") \".\""}`))
	if got := c.Choices[0].Text; got != "yes." && got != "no." || *c.Choices[0].FinishReason != "stop" {
		t.Errorf("GBNF output %q finish %v", got, *c.Choices[0].FinishReason)
	}
}

// Bad grammars, schemas and combinations are 400s naming the field with
// the grammar package's error; the server keeps serving.
func TestConstraintErrors(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	cases := []struct{ path, body, param, msg string }{
		{"/v1/completions", `{"prompt":"a","grammar":"root ::= \"a"}`, "grammar", "grammar"},
		{"/v1/completions", `{"prompt":"a","grammar":"start ::= \"a\""}`, "grammar", "root"},
		{"/v1/completions", `{"prompt":"a","json_schema":{"type":"strin"}}`, "json_schema", "json schema"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"$ref":"#/$defs/nope"}}}}}}`,
			"response_format.json_schema.schema", "#/properties/a"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema"}}`, "response_format.json_schema", "json_schema"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"yaml"}}`, "response_format", "yaml"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"a"}],"response_format":"json"}`, "response_format", "response_format"},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"a"}],"grammar":"root ::= \"a\"","response_format":{"type":"json_object"}}`, "response_format", "both"},
		{"/v1/completions", `{"prompt":"a","json_schema":{},"grammar":"root ::= \"a\""}`, "json_schema", "both"},
	}
	for _, c := range cases {
		e := expectError(t, ts.post(t, c.path, c.body), 400, "")
		if e.Error.Param == nil || *e.Error.Param != c.param || !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("%s: param %v message %q, want param %q mentioning %q", c.body, e.Error.Param, e.Error.Message, c.param, c.msg)
		}
	}
	// response_format text is no constraint.
	c := decode[completionBody](t, ts.post(t, "/v1/chat/completions",
		`{"messages":[{"role":"user","content":"a"}],"max_tokens":3,"response_format":{"type":"text"}}`))
	if *c.Choices[0].FinishReason != "length" {
		t.Errorf("text response_format: finish %v", *c.Choices[0].FinishReason)
	}
}
