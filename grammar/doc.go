// Package grammar is the constrained-decoding engine: it compiles GBNF
// (llama.cpp's "grammar" syntax) and JSON Schema (for response_format
// json_schema and json_object) into a Grammar, and a Matcher follows one
// generation through it, telling the sampler which tokens may come next.
//
// A Grammar is a set of rules, compiled like llama.cpp's: alternatives of
// sequences of character elements and rule references, with groups and
// repetitions ({m,n}, *, +, ?) rewritten as generated rules. Left
// recursion is refused at compile time, so matching always terminates.
//
// A Matcher keeps the set of parse stacks the text so far leaves open
// (frames shared between stacks and interned, so equal states are equal
// keys) and the bytes of an unfinished UTF-8 sequence. Accept advances it
// over a token's bytes; Mask computes the allowed tokens by one walk of
// the Vocab's byte trie (each shared prefix once, whole subtrees skipped
// when no stack takes their prefix) and caches the result per state.
//
// The package does not sample, does not know about chat templates or
// tool-call formats, and does not load models: the server builds a Vocab
// from the tokenizer once per model and a Matcher per request.
//
// Token references (<[id]>, and <think> with ParseForVocab) match one
// token by id, so a grammar can ask for control tokens, which have no
// text. Not supported from llama.cpp's GBNF: negated token references
// (!<...>). For JSON Schema, see SchemaToGBNF and the package README.
package grammar
