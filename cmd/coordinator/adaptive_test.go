package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/inference-x/inference-x/internal/testenv"
)

func TestRunAdaptive(t *testing.T) {
	code, out, errs := run(t, "run", "-m", stories(t), "-p", "Once upon a time", "-n", "16", "--temp", "0", "--no-display-prompt", "--adaptive")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, s := range []string{"adaptive: score=", "tier=simple", "plan=early[0-1]=Q2_K(Q4_0+F16) middle[2]=Q4_K(Q5_0+F16) late[3-4]=base",
		"fallback: rows of 64 are not a multiple of 256 (Q2_K): Q4_0", "released"} {
		if !strings.Contains(errs, s) {
			t.Errorf("stderr lacks %q:\n%s", s, errs)
		}
	}
	if strings.TrimSpace(out) == "" {
		t.Error("no text")
	}
	// The complex tier is the base weights: llama.cpp's greedy text.
	code, out, errs = run(t, "run", "-m", stories(t), "-p", "Lily and Tom went to the", "-n", "32", "--temp", "0", "--no-display-prompt",
		"--adaptive", "--adaptive-tier", "complex")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := "park. They saw a big box with a big box. They wanted to play with it. They wanted to play with"; strings.TrimSpace(out) != want {
		t.Errorf("complex tier: %q, want %q", out, want)
	}
	if code, _, errs := run(t, "run", "-m", stories(t), "-p", "x", "--adaptive-tier", "simple"); code == 0 || !strings.Contains(errs, "needs --adaptive") {
		t.Errorf("--adaptive-tier without --adaptive: exit %d %s", code, errs)
	}
	if code, _, errs := run(t, "run", "-m", stories(t), "-p", "x", "--adaptive", "--adaptive-plan", "simple=Q9,base,base"); code == 0 || !strings.Contains(errs, "Q9") {
		t.Errorf("bad plan: exit %d %s", code, errs)
	}
}

func TestPerplexityAdaptive(t *testing.T) {
	text := filepath.Join(testenv.Shared(t, "models"), "war-and-peace-40k.txt")
	base := filepath.Join(t.TempDir(), "base.ixlg")
	if code, _, errs := run(t, "perplexity", "-m", stories(t), "-f", text, "--ctx", "64", "--chunks", "3", "--save-logits", base); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, out, errs := run(t, "perplexity", "-m", stories(t), "-f", text, "--ctx", "64", "--chunks", "3", "--kl-base", base,
		"--adaptive", "--adaptive-tier", "simple", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep PerplexityReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	a := rep.Adaptive
	if a == nil || a.Chunks["simple"] != 3 || !a.Forced || a.WeightBytes["simple"] >= a.BaseBytes || len(a.Fallbacks) == 0 {
		t.Fatalf("adaptive summary %+v", a)
	}
	if rep.KL == nil || rep.KL.Mean <= 0 || rep.KL.Top1 < 0.5 {
		t.Errorf("KL vs base %+v", rep.KL)
	}
}

func TestAdaptiveBenchInProcess(t *testing.T) {
	text := filepath.Join(testenv.Shared(t, "models"), "war-and-peace-40k.txt")
	code, out, errs := run(t, "adaptive-bench", "-m", stories(t), "-f", text, "--ctx", "64", "--chunks", "2", "-n", "4", "-r", "1",
		"--in-process", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rep AdaptiveBenchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != len(benchRows)+1 || rep.Chunks != 2 || rep.Layers != 5 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Rows {
		switch {
		case r.PPL <= 1 || r.DecodeTokS <= 0 || r.PromptTokS <= 0:
			t.Errorf("row %s: %+v", r.Row, r)
		case r.Row == "base" && r.KL != nil:
			t.Errorf("base row has a KL")
		case r.Row == "complex" && (r.KL == nil || r.KL.Mean != 0 || r.KL.Top1 != 1):
			t.Errorf("complex row is not the base: %+v", r.KL)
		case r.Row == "simple" && (r.KL == nil || r.KL.Mean <= 0 || r.WeightBytes >= r.BaseBytes):
			t.Errorf("simple row: %+v", r)
		}
	}
}

// TestServeAdaptive sends a short and a long prompt at once through the
// HTTP API with --adaptive: they get different tiers, decode in the same
// batches, and the log names each request's score, tier and plan.
func TestServeAdaptive(t *testing.T) {
	model := stories(t)
	base, stop := startServe(t, "-m", model, "--http", "127.0.0.1:0", "--slots", "2", "--ctx", "512", "-t", "1", "--adaptive", "--adaptive-prepare")
	text, err := os.ReadFile(filepath.Join(testenv.Shared(t, "models"), "war-and-peace-40k.txt"))
	if err != nil {
		t.Fatal(err)
	}
	long, _ := json.Marshal(string(text[:600]))
	prompts := []string{`"Once upon a time"`, string(long)}
	texts := make([]string, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(base+"/v1/completions", "application/json",
				strings.NewReader(`{"prompt":`+p+`,"max_tokens":16,"temperature":0}`))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var c struct{ Choices []struct{ Text string } }
			if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != 200 || len(c.Choices) != 1 {
				t.Errorf("prompt %d: status %d, %v", i, resp.StatusCode, err)
				return
			}
			texts[i] = c.Choices[0].Text
		}()
	}
	wg.Wait()
	logs := stop()
	for _, s := range []string{"adaptive precision on", "adaptive copies made", `msg="adaptive plan" score=`, "tier=simple",
		`plan="early[0-1]=Q2_K(Q4_0+F16) middle[2]=Q4_K(Q5_0+F16) late[3-4]=base"`, "tier=moderate"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
	// The simple prompt's text is what run gives it alone.
	code, out, errs := run(t, "run", "-m", model, "-p", "Once upon a time", "-n", "16", "--temp", "0", "--no-display-prompt", "--adaptive", "--ctx", "512")
	if code != 0 {
		t.Fatalf("run: %s", errs)
	}
	if strings.TrimSpace(texts[0]) != strings.TrimSpace(out) {
		t.Errorf("served %q, run alone %q", texts[0], out)
	}
}
