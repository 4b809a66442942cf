package main

import (
	"testing"

	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/internal/commands"
)

// TestJSONSnakeCase: every -o json output of the coordinator spells its
// keys in snake_case.
func TestJSONSnakeCase(t *testing.T) {
	for name, v := range map[string]any{
		"inspect": commands.InspectReport{}, "bench": BenchResult{}, "perplexity": PerplexityReport{},
		"adaptive-bench": AdaptiveBenchReport{},
	} {
		if err := cli.CheckJSONKeys(v); err != nil {
			t.Errorf("coordinator %s -o json: %v", name, err)
		}
	}
}
