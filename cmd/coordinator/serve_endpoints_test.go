package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
)

// TestServeEndpointFlags checks the wiring of --alias (a comma list: the
// first is the id), --embeddings, --cors-origins and --sse-keepalive.
func TestServeEndpointFlags(t *testing.T) {
	base, stop := startServe(t, "-m", stories(t), "--http", "127.0.0.1:0", "--slots", "1", "--ctx", "128", "-t", "1",
		"-a", "tiny,gpt-4o-mini", "--alias", "third", "--embeddings", "--cors-origins", "http://app.example", "--sse-keepalive", "1s")
	defer stop()
	post := func(path, body string) *http.Response {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, id := range []string{"tiny", "gpt-4o-mini", "third"} {
		resp := post("/v1/embeddings", `{"model":"`+id+`","input":"Once upon a time"}`)
		var e struct {
			Model string
			Data  []struct{ Embedding []float32 }
		}
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 200 || e.Model != "tiny" || len(e.Data) != 1 || len(e.Data[0].Embedding) == 0 {
			t.Errorf("embeddings as %q: %d %+v", id, resp.StatusCode, e)
		}
	}
	if resp := post("/v1/embeddings", `{"model":"stories260K","input":"x"}`); resp.StatusCode != 404 {
		t.Errorf("the file name is not an id when --alias is given: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodOptions, base+"/v1/embeddings", nil)
	req.Header.Set("Origin", "http://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://app.example" {
		t.Errorf("preflight %d %v", resp.StatusCode, resp.Header)
	}
	var props struct {
		ModelAlias string `json:"model_alias"`
		TotalSlots int    `json:"total_slots"`
		Embeddings bool   `json:"embeddings"`
	}
	resp, err = http.Get(base + "/props")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&props)
	resp.Body.Close()
	if props.ModelAlias != "tiny" || props.TotalSlots != 1 || !props.Embeddings {
		t.Errorf("props %+v", props)
	}
}

// TestServeEndpointFlagsRefused: bad values are usage errors (exit 2)
// naming the flag, before the model is opened.
func TestServeEndpointFlagsRefused(t *testing.T) {
	const m = "/nonexistent/x.gguf"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-m", m, "--sse-keepalive", "-1s"}, "--sse-keepalive -1s"},
		{[]string{"serve", "-m", m, "--alias", ",x"}, "--alias"},
		{[]string{"serve", "-m", m, "--cors-origins", "app.example"}, "--cors-origins"},
	} {
		code, _, errs := run(t, c.args...)
		if code != cli.ExitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("coordinator %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, errs, cli.ExitUsage, c.want)
		}
	}
}
