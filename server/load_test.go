package server

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/server/scheduler"
)

var (
	loadStreams   = flag.Int("load.streams", 8, "BenchmarkLoad: concurrent streams")
	loadDuration  = flag.Duration("load.duration", 10*time.Second, "BenchmarkLoad: how long to keep starting requests")
	loadMaxTokens = flag.Int("load.max-tokens", 64, "BenchmarkLoad: max_tokens per request")
	loadSlots     = flag.Int("load.slots", 0, "BenchmarkLoad: scheduler slots (0: one per stream)")
	loadModel     = flag.String("load.model", "stories260K.gguf", "BenchmarkLoad: model in ../shared/models/stories260K")
)

// loadResult sums one load run.
type loadResult struct {
	requests, failed int
	tokens           int
	elapsed          time.Duration
	ttft             []time.Duration
	firstErr         error
}

// runLoad keeps n streaming chat requests in flight against base until
// the duration has passed (requests running then finish), and measures
// each request's time to first token and its generated tokens (usage).
func runLoad(ctx context.Context, base string, n int, d time.Duration, maxTokens int) loadResult {
	var mu sync.Mutex
	var res loadResult
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"model":"stories260K","messages":[{"role":"user","content":"Tell story %d of worker %d."}],`+
					`"max_tokens":%d,"temperature":0.8,"seed":%d,"stream":true,"stream_options":{"include_usage":true}}`, i, w, maxTokens, w*1000+i)
				ttft, toks, err := streamOnce(ctx, base, body)
				mu.Lock()
				res.requests++
				if err != nil {
					res.failed++
					if res.firstErr == nil {
						res.firstErr = err
					}
				} else {
					res.tokens += toks
					res.ttft = append(res.ttft, ttft)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// streamOnce sends one streaming chat request; it returns the time to the
// first content chunk and the completion tokens the usage chunk reports.
func streamOnce(ctx context.Context, base, body string) (time.Duration, int, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var ttft time.Duration
	tokens, done := -1, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var c completionBody
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return 0, 0, fmt.Errorf("bad chunk %q: %w", data, err)
		}
		if c.Usage != nil {
			tokens = c.Usage.CompletionTokens
		}
		if ttft == 0 && len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil && *c.Choices[0].Delta.Content != "" {
			ttft = time.Since(start)
		}
	}
	if !done || tokens < 0 {
		return 0, 0, fmt.Errorf("stream ended without usage and [DONE] (err %v)", sc.Err())
	}
	if ttft == 0 {
		ttft = time.Since(start) // nothing visible generated (an immediate end of generation)
	}
	return ttft, tokens, nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkLoad is the bounded load benchmark: -load.streams concurrent
// streaming chats against an in-process server on loopback for
// -load.duration; it reports aggregate generated tokens/s and p50/p99
// time to first token, and fails on any failed request. Run it once:
//
//	go test ./server -run '^$' -bench Load -benchtime 1x -load.streams 8 -load.duration 10s
func BenchmarkLoad(b *testing.B) {
	slots := *loadSlots
	if slots == 0 {
		slots = *loadStreams
	}
	ts := newTestServer(b, serverOpts{modelFile: *loadModel,
		sched: scheduler.Config{Slots: slots, Ctx: 512, KV: model.KVF16, MaxBatch: 256, Queue: 2 * *loadStreams}})
	b.ResetTimer()
	var res loadResult
	for b.Loop() {
		res = runLoad(b.Context(), ts.URL, *loadStreams, *loadDuration, *loadMaxTokens)
	}
	b.StopTimer()
	if res.failed > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", res.failed, res.requests, res.firstErr)
	}
	tps := float64(res.tokens) / res.elapsed.Seconds()
	p50, p99 := percentile(res.ttft, 0.50), percentile(res.ttft, 0.99)
	b.ReportMetric(tps, "tokens/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ttft-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ttft-ms")
	b.ReportMetric(float64(res.requests), "requests")
	b.ReportMetric(float64(res.failed), "failed")
	b.Logf("%d streams, %d slots, %v: %d requests, 0 failed, %d tokens, %.0f tokens/s, TTFT p50 %v p99 %v",
		*loadStreams, slots, res.elapsed.Round(time.Millisecond), res.requests, res.tokens, tps,
		p50.Round(time.Microsecond), p99.Round(time.Microsecond))
}
