package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/cli"
	"github.com/inference-x/inference-x/tokenizer"
)

// TokenizeOptions are the inputs of `ixctl tokenize`.
type TokenizeOptions struct {
	Model        string
	Prompt       string
	File         string
	AddSpecial   bool
	ParseSpecial bool
	Output       cli.Output

	promptSet bool
	text      string
}

func newTokenizeCmd(s cli.Streams) *cobra.Command {
	o := &TokenizeOptions{}
	cmd := &cobra.Command{
		Use:   "tokenize -m MODEL.gguf (-p TEXT | -f FILE)",
		Short: "Tokenize text with a GGUF model's vocabulary, as llama.cpp does",
		Long: `tokenize converts text to token ids with the tokenizer stored in a GGUF
file (tokenizer.ggml.*), token for token as llama.cpp's llama_tokenize.
Only the vocabulary is read, so vocab-only GGUF files work.

Text output prints one line per token: the id and the token's text
(special tokens as their text, partial UTF-8 escaped). JSON output is
{"ids": [...], "detok": "..."} where detok is llama_detokenize of the ids
with control tokens rendered as nothing.

--add-special adds BOS/EOS where the vocabulary asks for it;
--parse-special recognises control tokens such as <|im_start|> in the
text. -f - reads the text from standard input.`,
		Example: `  ixctl tokenize -m qwen3.gguf -p "Hello, world!"
  ixctl tokenize -m llama.gguf -f prompt.txt --add-special -o json | jq '.ids | length'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.promptSet = cmd.Flags().Changed("prompt")
			if err := o.Complete(s.In); err != nil {
				return err
			}
			return o.Run(s.Out)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Model, "model", "m", "", "GGUF file whose vocabulary to use (required)")
	f.StringVarP(&o.Prompt, "prompt", "p", "", "text to tokenize")
	f.StringVarP(&o.File, "file", "f", "", "file holding the text to tokenize (- for standard input)")
	f.BoolVar(&o.AddSpecial, "add-special", false, "add BOS/EOS as the vocabulary specifies")
	f.BoolVar(&o.ParseSpecial, "parse-special", false, "recognise control tokens in the text")
	cli.AddOutputFlag(cmd, &o.Output)
	return cmd
}

// Validate checks that exactly one text source and a model are given.
func (o *TokenizeOptions) Validate() error {
	if o.Model == "" {
		return cli.Usage(errors.New("tokenize: -m MODEL.gguf is required"))
	}
	if o.promptSet == (o.File != "") {
		return cli.Usage(errors.New("tokenize: give the text with exactly one of -p TEXT and -f FILE"))
	}
	return nil
}

// Complete validates the options and reads the text.
func (o *TokenizeOptions) Complete(stdin io.Reader) error {
	if err := o.Validate(); err != nil {
		return err
	}
	switch {
	case o.promptSet:
		o.text = o.Prompt
	case o.File == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("tokenize: reading standard input: %w", err)
		}
		o.text = string(b)
	default:
		b, err := os.ReadFile(o.File)
		if err != nil {
			return fmt.Errorf("tokenize: %w", err)
		}
		o.text = string(b)
	}
	return nil
}

// TokenizeReport is the JSON shape of `tokenize -o json`.
type TokenizeReport struct {
	IDs   []int32 `json:"ids"`
	Detok string  `json:"detok"`
}

// Run loads the vocabulary, tokenizes and prints.
func (o *TokenizeOptions) Run(w io.Writer) error {
	f, err := gguf.Open(o.Model)
	if err != nil {
		return err
	}
	tok, err := tokenizer.New(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", o.Model, err)
	}
	ids := tok.Encode(o.text, o.AddSpecial, o.ParseSpecial)
	if o.Output == cli.OutputJSON {
		return cli.PrintJSON(w, TokenizeReport{IDs: ids, Detok: tok.Decode(ids)})
	}
	for _, id := range ids {
		if _, err := fmt.Fprintf(w, "%6d %q\n", id, tok.TokenToPiece(id, true)); err != nil {
			return err
		}
	}
	return nil
}
