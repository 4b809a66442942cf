// Package toolcall owns the tool-call formats of the model families the
// engine runs: it chooses a family's format from its chat template
// (Detect), splits a generated text into content, reasoning and tool calls
// (Format.Parse for a whole output, Stream for one delta at a time, as
// OpenAI streams delta.tool_calls), and writes the GBNF grammar that forces
// a call in that format (Format.Grammar, for tool_choice "required" or a
// named function).
//
// It does not render prompts (package chat), sample or tokenize: the
// server detokenizes with control tokens shown (the markers are control
// tokens in most families) and feeds that text here.
//
// Outcome of bad output: a marker that is not followed by a well-formed
// call stays in the content as text. A call whose name was read but whose
// text ends before the call does (max_tokens) is returned with the
// arguments received so far and an error wrapping ErrIncomplete; arguments
// that are not valid JSON give an error wrapping ErrArguments. Stream and
// Parse give the same result for the same text, however it is split.
package toolcall
