package main

import (
	"encoding/json"
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/router"
	"github.com/inference-x/inference-x/shard"
)

// TestJSONSnakeCase: every -o json output of ixctl (and the placement
// file of plan --write) spells its keys in snake_case.
func TestJSONSnakeCase(t *testing.T) {
	for name, v := range map[string]any{
		"synth": SynthResult{}, "quantize": QuantizeResult{}, "upcycle": UpcycleResult{}, "split": shard.Manifest{},
		"status": StatusJSON{}, "plan": PlanJSON{}, "tokenize": TokenizeReport{}, "plan --write": router.PlacementFile{},
	} {
		if err := cli.CheckJSONKeys(v); err != nil {
			t.Errorf("ixctl %s -o json: %v", name, err)
		}
	}
	// What synth prints: the config is snake_case too.
	var got struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "synth", "--preset", "kimi-k2-mini", "--dry-run", "-o", "json")), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"arch", "layers", "kv_heads", "experts_used", "kv_lora_rank", "v_head_dim"} {
		if _, ok := got.Config[k]; !ok {
			t.Errorf("synth -o json: config has no %q: %v", k, got.Config)
		}
	}
	if _, ok := got.Config["KVHeads"]; ok {
		t.Errorf("synth -o json: Go field names in config: %v", got.Config)
	}
}
