package main

import (
	"fmt"
	"time"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/model"
	"github.com/inference-x/inference-x/shard"
	"github.com/inference-x/inference-x/tokenizer"
)

// loaded is an opened model with its tokenizer.
type loaded struct {
	file  *gguf.File
	model *model.Model
	tok   *tokenizer.Tokenizer
	took  time.Duration
}

func (l *loaded) Close() { l.file.Close() }

// loadModel opens path and builds the model and its tokenizer.
func loadModel(path string, needTokenizer bool) (*loaded, error) {
	if path == "" {
		return nil, fmt.Errorf("no model: give one with -m MODEL.gguf")
	}
	start := time.Now()
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := model.Load(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l := &loaded{file: f, model: m}
	if needTokenizer {
		if l.tok, err = tokenizer.New(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	l.took = time.Since(start)
	return l, nil
}

// loadLocalModel is loadModel for commands that compute every expert in
// process (bench, perplexity, adaptive-bench): a coordinator shard written
// by ixctl split, which has no experts, is refused with a clear error.
func loadLocalModel(path string, needTokenizer bool) (*loaded, error) {
	lm, err := loadModel(path, needTokenizer)
	if err != nil {
		return nil, err
	}
	if _, err := shard.CheckCoordinator(lm.file, false); err != nil {
		lm.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return lm, nil
}
