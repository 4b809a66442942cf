package quantize

import (
	"fmt"
	"sort"
	"strings"

	"github.com/inference-x/inference-x/gguf"
)

// FileType is llama.cpp's llama_ftype (include/llama.h): the value a model
// stores in general.file_type to say how it was quantized.
type FileType uint32

// The file types with a preset here (llama.h LLAMA_FTYPE_*).
const (
	FileTypeF32      FileType = 0
	FileTypeF16      FileType = 1
	FileTypeQ4_0     FileType = 2
	FileTypeQ4_1     FileType = 3
	FileTypeQ8_0     FileType = 7
	FileTypeQ5_0     FileType = 8
	FileTypeQ5_1     FileType = 9
	FileTypeQ2_K     FileType = 10
	FileTypeQ3_K_S   FileType = 11
	FileTypeQ3_K_M   FileType = 12
	FileTypeQ3_K_L   FileType = 13
	FileTypeQ4_K_S   FileType = 14
	FileTypeQ4_K_M   FileType = 15
	FileTypeQ5_K_S   FileType = 16
	FileTypeQ5_K_M   FileType = 17
	FileTypeQ6_K     FileType = 18
	FileTypeIQ2_XXS  FileType = 19
	FileTypeIQ2_XS   FileType = 20
	FileTypeQ2_K_S   FileType = 21
	FileTypeIQ3_XS   FileType = 22
	FileTypeIQ3_XXS  FileType = 23
	FileTypeIQ1_S    FileType = 24
	FileTypeIQ4_NL   FileType = 25
	FileTypeIQ3_S    FileType = 26
	FileTypeIQ3_M    FileType = 27
	FileTypeIQ2_S    FileType = 28
	FileTypeIQ2_M    FileType = 29
	FileTypeIQ4_XS   FileType = 30
	FileTypeIQ1_M    FileType = 31
	FileTypeBF16     FileType = 32
	FileTypeTQ1_0    FileType = 36
	FileTypeTQ2_0    FileType = 37
	FileTypeMXFP4MoE FileType = 38
	FileTypeQ1_0     FileType = 40
	FileTypeQ2_0     FileType = 41
)

// Preset is one of llama-quantize's target types: a file type and the
// ggml type most tensors get (llama_ftype_get_default_type).
type Preset struct {
	Name     string // llama-quantize's name, e.g. "Q4_K_M"
	FileType FileType
	Base     gguf.Type
	Help     string
}

// presets lists llama-quantize's types (tools/quantize/quantize.cpp
// QUANT_OPTIONS) with the default type of each (src/llama-quant.cpp
// llama_ftype_get_default_type). NVFP4 is left out: the llama.cpp build
// this project compares against refuses it.
var presets = []Preset{
	{"F32", FileTypeF32, gguf.TypeF32, "every tensor F32"},
	{"F16", FileTypeF16, gguf.TypeF16, "matrices F16, the rest F32"},
	{"BF16", FileTypeBF16, gguf.TypeBF16, "matrices BF16, the rest F32"},
	{"Q8_0", FileTypeQ8_0, gguf.TypeQ8_0, "8.5 bpw"},
	{"Q4_0", FileTypeQ4_0, gguf.TypeQ4_0, "4.5 bpw, output Q6_K"},
	{"Q4_1", FileTypeQ4_1, gguf.TypeQ4_1, "5.0 bpw, output Q6_K"},
	{"Q5_0", FileTypeQ5_0, gguf.TypeQ5_0, "5.5 bpw, output Q6_K"},
	{"Q5_1", FileTypeQ5_1, gguf.TypeQ5_1, "6.0 bpw, output Q6_K"},
	{"Q2_K", FileTypeQ2_K, gguf.TypeQ2_K, "Q2_K with Q3_K/Q4_K for attn_v, ffn_down, attn_output"},
	{"Q2_K_S", FileTypeQ2_K_S, gguf.TypeQ2_K, "Q2_K, fewer upgrades (needs an importance matrix)"},
	{"Q3_K_S", FileTypeQ3_K_S, gguf.TypeQ3_K, "Q3_K throughout"},
	{"Q3_K_M", FileTypeQ3_K_M, gguf.TypeQ3_K, "Q3_K with Q4_K/Q5_K for attn_v, ffn_down, attn_output"},
	{"Q3_K_L", FileTypeQ3_K_L, gguf.TypeQ3_K, "Q3_K with Q5_K for attn_v, ffn_down, attn_output"},
	{"Q4_K_S", FileTypeQ4_K_S, gguf.TypeQ4_K, "Q4_K, Q5_K for the first attn_v and ffn_down"},
	{"Q4_K_M", FileTypeQ4_K_M, gguf.TypeQ4_K, "Q4_K, Q6_K for half of attn_v and ffn_down"},
	{"Q5_K_S", FileTypeQ5_K_S, gguf.TypeQ5_K, "Q5_K throughout"},
	{"Q5_K_M", FileTypeQ5_K_M, gguf.TypeQ5_K, "Q5_K, Q6_K for half of attn_v and ffn_down"},
	{"Q6_K", FileTypeQ6_K, gguf.TypeQ6_K, "6.56 bpw"},
	{"IQ1_S", FileTypeIQ1_S, gguf.TypeIQ1_S, "1.56 bpw (needs an importance matrix)"},
	{"IQ1_M", FileTypeIQ1_M, gguf.TypeIQ1_M, "1.75 bpw (needs an importance matrix)"},
	{"IQ2_XXS", FileTypeIQ2_XXS, gguf.TypeIQ2_XXS, "2.06 bpw (needs an importance matrix)"},
	{"IQ2_XS", FileTypeIQ2_XS, gguf.TypeIQ2_XS, "2.31 bpw (needs an importance matrix)"},
	{"IQ2_S", FileTypeIQ2_S, gguf.TypeIQ2_XS, "2.5 bpw (needs an importance matrix)"},
	{"IQ2_M", FileTypeIQ2_M, gguf.TypeIQ2_S, "2.7 bpw (needs an importance matrix)"},
	{"IQ3_XXS", FileTypeIQ3_XXS, gguf.TypeIQ3_XXS, "3.06 bpw (needs an importance matrix)"},
	{"IQ3_XS", FileTypeIQ3_XS, gguf.TypeIQ3_S, "3.3 bpw"},
	{"IQ3_S", FileTypeIQ3_S, gguf.TypeIQ3_S, "3.44 bpw"},
	{"IQ3_M", FileTypeIQ3_M, gguf.TypeIQ3_S, "3.66 bpw"},
	{"IQ4_NL", FileTypeIQ4_NL, gguf.TypeIQ4_NL, "4.5 bpw non-linear"},
	{"IQ4_XS", FileTypeIQ4_XS, gguf.TypeIQ4_XS, "4.25 bpw non-linear"},
	{"TQ1_0", FileTypeTQ1_0, gguf.TypeTQ1_0, "1.69 bpw ternary"},
	{"TQ2_0", FileTypeTQ2_0, gguf.TypeTQ2_0, "2.06 bpw ternary"},
	{"MXFP4_MOE", FileTypeMXFP4MoE, gguf.TypeMXFP4, "expert tensors MXFP4, the rest Q8_0"},
	{"Q1_0", FileTypeQ1_0, gguf.TypeQ1_0, "1.125 bpw"},
	{"Q2_0", FileTypeQ2_0, gguf.TypeQ2_0, "2.25 bpw"},
}

// Presets returns llama-quantize's presets in the order it lists them.
func Presets() []Preset { return append([]Preset(nil), presets...) }

// Mixed reports whether the preset gives some tensors other types than its
// base type (everything but the plain float presets).
func (p Preset) Mixed() bool { return p.Base.Traits().Quantized }

// guessedFileType is the file type llama.cpp's model loader infers from
// the most common tensor type (llama-model-loader.cpp); a bare ggml type
// used as a target is recorded under it.
var guessedFileType = map[gguf.Type]FileType{
	gguf.TypeF32: FileTypeF32, gguf.TypeF16: FileTypeF16, gguf.TypeBF16: FileTypeBF16,
	gguf.TypeQ4_0: FileTypeQ4_0, gguf.TypeQ4_1: FileTypeQ4_1, gguf.TypeQ5_0: FileTypeQ5_0,
	gguf.TypeQ5_1: FileTypeQ5_1, gguf.TypeQ8_0: FileTypeQ8_0, gguf.TypeQ2_K: FileTypeQ2_K,
	gguf.TypeQ3_K: FileTypeQ3_K_M, gguf.TypeQ4_K: FileTypeQ4_K_M, gguf.TypeQ5_K: FileTypeQ5_K_M,
	gguf.TypeQ6_K: FileTypeQ6_K, gguf.TypeTQ1_0: FileTypeTQ1_0, gguf.TypeTQ2_0: FileTypeTQ2_0,
	gguf.TypeIQ2_XXS: FileTypeIQ2_XXS, gguf.TypeIQ2_XS: FileTypeIQ2_XS, gguf.TypeIQ2_S: FileTypeIQ2_S,
	gguf.TypeIQ3_XXS: FileTypeIQ3_XXS, gguf.TypeIQ1_S: FileTypeIQ1_S, gguf.TypeIQ1_M: FileTypeIQ1_M,
	gguf.TypeIQ4_NL: FileTypeIQ4_NL, gguf.TypeIQ4_XS: FileTypeIQ4_XS, gguf.TypeIQ3_S: FileTypeIQ3_S,
	gguf.TypeMXFP4: FileTypeMXFP4MoE, gguf.TypeQ1_0: FileTypeQ1_0, gguf.TypeQ2_0: FileTypeQ2_0,
}

// Target is what a model is converted to: a preset, optionally pure (every
// quantizable tensor gets the base type, as llama-quantize --pure).
type Target struct {
	Preset
	Pure bool
}

// String names the target as ParseTarget accepts it.
func (t Target) String() string {
	if t.Pure && t.Mixed() && t.Name != t.Base.String() {
		return t.Name + " (pure)"
	}
	return t.Name
}

// ParseTarget resolves a type name, case-insensitively: a preset name
// (Q4_K_M, Q8_0, IQ4_XS, MXFP4_MOE, ...) means that preset's per-tensor
// choices; any other ggml type with a quantizer (Q4_K, Q5_K, IQ3_S, MXFP4,
// ...) means every quantizable tensor in that type, recorded under the
// file type llama.cpp would infer. Unlike llama-quantize, Q3_K, Q4_K and
// Q5_K are the bare types here, not aliases of the _M presets. pure forces
// the base type for every tensor (llama-quantize --pure).
func ParseTarget(name string, pure bool) (Target, error) {
	for _, p := range presets {
		if strings.EqualFold(p.Name, name) {
			return Target{p, pure}, nil
		}
	}
	if t, err := gguf.ParseType(name); err == nil {
		if ft, ok := guessedFileType[t]; ok {
			return Target{Preset{Name: t.String(), FileType: ft, Base: t, Help: "every quantizable tensor " + t.String()}, true}, nil
		}
	}
	return Target{}, fmt.Errorf("unknown quantization type %q; valid: %s", name, strings.Join(TargetNames(), " "))
}

// TargetNames lists every name ParseTarget accepts: the presets, then the
// bare ggml types that are not preset names.
func TargetNames() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range presets {
		out = append(out, p.Name)
		seen[p.Name] = true
	}
	var bare []string
	for t := range guessedFileType {
		if !seen[t.String()] {
			bare = append(bare, t.String())
		}
	}
	sort.Strings(bare)
	return append(out, bare...)
}
