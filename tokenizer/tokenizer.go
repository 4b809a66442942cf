package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/inference-x/inference-x/gguf"
)

// ErrUnsupported is wrapped by New's error for a tokenizer model or
// pre-tokenizer this package does not implement.
var ErrUnsupported = errors.New("tokenizer: unsupported")

// ErrVocab is wrapped by New's error for missing or malformed
// tokenizer.ggml.* metadata.
var ErrVocab = errors.New("tokenizer: bad vocabulary metadata")

// Attr is a token's attribute set, llama.cpp's llama_token_attr.
type Attr uint16

// Token attributes.
const (
	AttrUnknown     Attr = 1 << 0
	AttrUnused      Attr = 1 << 1
	AttrNormal      Attr = 1 << 2
	AttrControl     Attr = 1 << 3
	AttrUserDefined Attr = 1 << 4
	AttrByte        Attr = 1 << 5
	AttrNormalized  Attr = 1 << 6
	AttrLStrip      Attr = 1 << 7
	AttrRStrip      Attr = 1 << 8
	AttrSingleWord  Attr = 1 << 9
)

// Model names a vocabulary type (tokenizer.ggml.model).
type Model string

// Supported vocabulary types.
const (
	ModelSPM Model = "llama" // SentencePiece: scores, byte fallback, ▁ for spaces
	ModelBPE Model = "gpt2"  // byte-level BPE: merges and a pre-tokenizer
)

// Metadata keys read by New.
const (
	keyModel          = "tokenizer.ggml.model"
	keyPre            = "tokenizer.ggml.pre"
	keyTokens         = "tokenizer.ggml.tokens"
	keyScores         = "tokenizer.ggml.scores"
	keyTokenType      = "tokenizer.ggml.token_type"
	keyMerges         = "tokenizer.ggml.merges"
	keyAddBOS         = "tokenizer.ggml.add_bos_token"
	keyAddEOS         = "tokenizer.ggml.add_eos_token"
	keyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
	keyName           = "general.name"
)

// Null is the id of an absent special token (LLAMA_TOKEN_NULL).
const Null int32 = -1

// Tokenizer converts text to token ids and back exactly as llama.cpp's
// llama_tokenize and llama_detokenize do for the same GGUF vocabulary.
// It is immutable after New and safe for concurrent use.
type Tokenizer struct {
	model Model
	pre   string

	texts  []string         // token text by id ("[EMPTY_i]" for empty ones)
	attrs  []Attr           // attributes by id
	scores []float32        // SPM scores by id
	ids    map[string]int32 // text -> id (the last id wins for duplicates)
	pieces []string         // token_to_piece(id, special=true), llama.cpp's piece cache

	special specialIDs
	eog     []int32 // sorted end-of-generation ids
	addBOS  bool
	addEOS  bool
	// addSpacePrefix: SPM prepends a space to text fragments; detokenize
	// drops one leading space of the first token.
	addSpacePrefix bool
	cleanSpaces    bool

	// specials are the CONTROL, USER_DEFINED and UNKNOWN tokens longest
	// first: the order llama.cpp splits them out of the text.
	specials     []int32
	specialTrie  trie // all of specials (parse_special on)
	userDefTrie  trie // the USER_DEFINED ones (matched even with parse_special off)
	uni          *unicodeTable
	spmByteToken [256]int32 // SPM byte fallback: <0xXX>, else the 1-byte text
	// spmSplitAtSpace: SPM merges may run on the text cut before each ▁
	// that follows another character (see spmSplitsAtSpace).
	spmSplitAtSpace bool
	bpe             *bpeModel
	preTok          preTokenizer

	scratch sync.Pool // *encoder
}

// specialIDs are the special token ids llama.cpp keeps (Null when absent).
type specialIDs struct {
	bos, eos, eot, eom, unk, sep, pad, mask, nl int32
	fimPre, fimSuf, fimMid, fimPad, fimRep      int32
	fimSep                                      int32
}

// New builds the tokenizer of a GGUF file from its tokenizer.ggml.*
// metadata. Only the vocabulary is read, so vocab-only files work. The
// file may be closed afterwards.
func New(f *gguf.File) (*Tokenizer, error) {
	model, err := f.String(keyModel)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVocab, err)
	}
	t := &Tokenizer{model: Model(model), uni: loadUnicodeTable()}
	t.pre, _ = f.String(keyPre)
	switch t.model {
	case ModelSPM:
		t.special = specialIDs{bos: 1, eos: 2, unk: 0}
		t.addSpacePrefix, t.addBOS = true, true
	case ModelBPE:
		t.preTok, err = lookupPreTokenizer(t.pre)
		if err != nil {
			return nil, err
		}
		t.special = specialIDs{bos: 11, eos: 11, unk: Null}
		if t.preTok.noBOS {
			t.special.bos = Null
		}
		t.cleanSpaces, t.addBOS = t.preTok.cleanSpaces, t.preTok.addBOS
	default:
		return nil, fmt.Errorf("%w: tokenizer model %q (tokenizer.ggml.model); supported: %s, %s",
			ErrUnsupported, model, ModelSPM, ModelBPE)
	}
	for _, id := range []*int32{&t.special.eot, &t.special.eom, &t.special.sep, &t.special.pad, &t.special.mask,
		&t.special.fimPre, &t.special.fimSuf, &t.special.fimMid, &t.special.fimPad, &t.special.fimRep, &t.special.fimSep} {
		*id = Null
	}
	if b, err := f.Bool(keyAddSpacePrefix); err == nil {
		t.addSpacePrefix = b
	}
	if err := t.loadTokens(f); err != nil {
		return nil, err
	}
	if t.model == ModelBPE {
		t.bpe, err = newBPEModel(f, t.texts, t.pre)
		if err != nil {
			return nil, err
		}
		t.bpe.ignoreMerges = t.preTok.ignoreMerges
	}
	t.initSPMBytes()
	t.spmSplitAtSpace = t.model == ModelSPM && spmSplitsAtSpace(t.texts)
	t.scratch.New = func() any { return new(encoder) }
	t.special.nl = t.newlineID()
	t.loadSpecialIDs(f)
	t.detectSpecialTokens()
	t.buildPieces()
	t.applyNameAttrs(f)
	t.buildSpecialTries()
	return t, nil
}

func (t *Tokenizer) loadTokens(f *gguf.File) error {
	texts, err := f.Strings(keyTokens)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVocab, err)
	}
	n := len(texts)
	if n == 0 {
		return fmt.Errorf("%w: %s is empty", ErrVocab, keyTokens)
	}
	t.texts = make([]string, n)
	t.attrs = make([]Attr, n)
	t.scores = make([]float32, n)
	t.ids = make(map[string]int32, n)
	if f.Has(keyScores) {
		if s, err := f.Float32s(keyScores); err == nil {
			if len(s) < n {
				return fmt.Errorf("%w: %s has %d entries for %d tokens", ErrVocab, keyScores, len(s), n)
			}
			copy(t.scores, s)
		} else if s, err2 := f.Ints(keyScores); err2 == nil {
			if len(s) < n {
				return fmt.Errorf("%w: %s has %d entries for %d tokens", ErrVocab, keyScores, len(s), n)
			}
			for i := range t.scores {
				t.scores[i] = float32(s[i])
			}
		} else {
			return fmt.Errorf("%w: %v", ErrVocab, err)
		}
	}
	var types []int64
	if f.Has(keyTokenType) {
		if types, err = f.Ints(keyTokenType); err != nil {
			return fmt.Errorf("%w: %v", ErrVocab, err)
		}
		if len(types) < n {
			return fmt.Errorf("%w: %s has %d entries for %d tokens", ErrVocab, keyTokenType, len(types), n)
		}
	}
	for i, s := range texts {
		if s == "" {
			s = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		t.texts[i] = s
		t.ids[s] = int32(i)
		t.attrs[i] = AttrNormal
		if types != nil {
			t.attrs[i] = attrOfType(types[i])
		}
	}
	return nil
}

// attrOfType maps tokenizer.ggml.token_type (llama_token_type) to
// attributes.
func attrOfType(typ int64) Attr {
	switch typ {
	case 1:
		return AttrNormal
	case 2:
		return AttrUnknown
	case 3:
		return AttrControl
	case 4:
		return AttrUserDefined
	case 5:
		return AttrUnused
	case 6:
		return AttrByte
	}
	return 0 // UNDEFINED
}

func (t *Tokenizer) initSPMBytes() {
	for b := range t.spmByteToken {
		id, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]
		if !ok {
			id, ok = t.ids[string([]byte{byte(b)})]
		}
		if !ok {
			id = Null
		}
		t.spmByteToken[b] = id
	}
}

// newlineID is llama.cpp's linefeed_id: the byte token of '\n' for SPM,
// the first token of "\n" for BPE.
func (t *Tokenizer) newlineID() int32 {
	if t.model == ModelSPM {
		if id := t.spmByteToken['\n']; id != Null {
			return id
		}
		return t.special.pad
	}
	if ids := t.Encode("\n", false, false); len(ids) > 0 {
		return ids[0]
	}
	return t.special.pad
}

// specialKeys pairs the metadata keys of special token ids with their
// fields, in llama.cpp's order (the deprecated FIM keys last).
func (t *Tokenizer) specialKeys() []struct {
	key string
	id  *int32
} {
	s := &t.special
	return []struct {
		key string
		id  *int32
	}{
		{"tokenizer.ggml.bos_token_id", &s.bos},
		{"tokenizer.ggml.eos_token_id", &s.eos},
		{"tokenizer.ggml.eot_token_id", &s.eot},
		{"tokenizer.ggml.eom_token_id", &s.eom},
		{"tokenizer.ggml.unknown_token_id", &s.unk},
		{"tokenizer.ggml.seperator_token_id", &s.sep}, // sic, as llama.cpp spells it
		{"tokenizer.ggml.padding_token_id", &s.pad},
		{"tokenizer.ggml.mask_token_id", &s.mask},
		{"tokenizer.ggml.fim_pre_token_id", &s.fimPre},
		{"tokenizer.ggml.fim_suf_token_id", &s.fimSuf},
		{"tokenizer.ggml.fim_mid_token_id", &s.fimMid},
		{"tokenizer.ggml.fim_pad_token_id", &s.fimPad},
		{"tokenizer.ggml.fim_rep_token_id", &s.fimRep},
		{"tokenizer.ggml.fim_sep_token_id", &s.fimSep},
		{"tokenizer.ggml.prefix_token_id", &s.fimPre},
		{"tokenizer.ggml.suffix_token_id", &s.fimSuf},
		{"tokenizer.ggml.middle_token_id", &s.fimMid},
	}
}

func (t *Tokenizer) loadSpecialIDs(f *gguf.File) {
	n := int64(len(t.texts))
	for _, k := range t.specialKeys() {
		if *k.id >= 0 && int64(*k.id) >= n { // a default out of range is disabled
			*k.id = Null
		}
		v, err := f.Int(k.key)
		if err != nil {
			continue
		}
		// llama.cpp reads the id as uint32 and keeps the default when it
		// is out of range (4294967295 is a common "none").
		if v >= 0 && v < n {
			*k.id = int32(v)
		}
	}
	if b, err := f.Bool(keyAddBOS); err == nil {
		t.addBOS = b
	}
	if b, err := f.Bool(keyAddEOS); err == nil {
		t.addEOS = b
	}
}

// Token texts llama.cpp recognises to fill in missing special ids
// (llama_vocab::impl::load, "auto-detect special tokens by text"). When
// several tokens of a vocabulary match, llama.cpp takes the first its
// hash map yields; we take the first in these lists, which agrees with it
// on every vocabulary tested (Llama 3 <|eot_id|>, Qwen <|im_end|>).
var (
	eotTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}
	eomTexts    = []string{"<|eom_id|>"}
	fimPreTexts = []string{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>",
		"▁<PRE>", "<|code_prefix|>", "<|prefix|>"}
	fimSufTexts = []string{"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>",
		"▁<SUF>", "<|code_suffix|>", "<|suffix|>"}
	fimMidTexts = []string{"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>",
		"▁<MID>", "<|code_middle|>", "<|middle|>"}
	fimPadTexts = []string{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}
	fimRepTexts = []string{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}
	fimSepTexts = []string{"<|file_sep|>"}
	eogTexts    = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
		"<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]",
		"[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
		"<｜end▁of▁sentence｜>", "[e~["}
)

// detectSpecialTokens reproduces llama.cpp's fix-ups after the special ids
// are read: EOT/EOM/FIM ids found by text (promoted to CONTROL), control
// tokens named "unused" marked UNUSED, the end-of-generation set, and the
// gpt-oss, o200k_harmony and gemma4 workarounds.
func (t *Tokenizer) detectSpecialTokens() {
	promote := func(id int32) { t.attrs[id] |= AttrControl }
	byText := func(field *int32, texts []string) {
		if *field != Null {
			return
		}
		for _, s := range texts {
			if id, ok := t.ids[s]; ok {
				*field = id
				promote(id)
				return
			}
		}
	}
	s := &t.special
	byText(&s.eot, eotTexts)
	byText(&s.eom, eomTexts)
	byText(&s.fimPre, fimPreTexts)
	byText(&s.fimSuf, fimSufTexts)
	byText(&s.fimMid, fimMidTexts)
	byText(&s.fimPad, fimPadTexts)
	byText(&s.fimRep, fimRepTexts)
	byText(&s.fimSep, fimSepTexts)

	for id, text := range t.texts {
		if t.attrs[id]&AttrControl != 0 && strings.Contains(text, "unused") {
			t.attrs[id] |= AttrUnused
		}
	}

	eog := map[int32]bool{}
	for _, id := range []int32{s.fimPad, s.fimRep, s.fimSep} {
		if id != Null {
			eog[id] = true
		}
	}
	for _, text := range eogTexts {
		if id, ok := t.ids[text]; ok {
			eog[id] = true
			promote(id)
		}
	}
	for _, text := range []string{"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"} {
		if id, ok := t.ids[text]; ok { // gpt-oss: always rendered
			t.attrs[id] = AttrUserDefined
		}
	}
	for _, id := range []int32{s.eos, s.eot, s.eom} {
		if id != Null {
			eog[id] = true
		}
	}
	// o200k_harmony and solar-open: <|end|> ends a message, not generation.
	has := func(text string) (int32, bool) {
		for id := range eog {
			if id >= 0 && int(id) < len(t.texts) && t.texts[id] == text {
				return id, true
			}
		}
		return Null, false
	}
	_, hasReturn := has("<|return|>")
	_, hasCall := has("<|call|>")
	_, hasCalls := has("<|calls|>")
	_, hasFlush := has("<|flush|>")
	if end, hasEnd := has("<|end|>"); hasEnd && (hasReturn && (hasCall || hasCalls) || (hasCall || hasCalls) && hasFlush) {
		delete(eog, end)
		t.attrs[end] = AttrUserDefined
	}
	// gemma4 and paddleocr: </s> is not an end of generation there.
	if _, hasTool := has("<|tool_response>"); hasTool {
		if sID, ok := has("</s>"); ok {
			delete(eog, sID)
			t.attrs[sID] = AttrNormal
		}
	}
	for id := range eog {
		if id >= 0 && int(id) < len(t.texts) {
			t.eog = append(t.eog, id)
		}
	}
	sort.Slice(t.eog, func(i, j int) bool { return t.eog[i] < t.eog[j] })

	for id, a := range t.attrs {
		if a&(AttrControl|AttrUserDefined|AttrUnknown) != 0 {
			t.specials = append(t.specials, int32(id))
		}
	}
	// llama.cpp sorts by length with std::sort (unstable); equal lengths
	// keep id order here.
	sort.SliceStable(t.specials, func(i, j int) bool {
		return len(t.texts[t.specials[i]]) > len(t.texts[t.specials[j]])
	})
}

// applyNameAttrs sets the per-model lstrip/rstrip attributes llama.cpp
// derives from general.name, tokenizer.ggml.pre and the architecture.
func (t *Tokenizer) applyNameAttrs(f *gguf.File) {
	name, _ := f.String(keyName)
	name = strings.ToLower(name)
	arch, _ := f.String(gguf.KeyArchitecture)
	set := func(text string, a Attr, on bool) {
		id, ok := t.ids[text]
		if !ok {
			return
		}
		if on {
			t.attrs[id] |= a
		} else {
			t.attrs[id] &^= a
		}
	}
	containsAny := func(s string, subs ...string) bool {
		for _, sub := range subs {
			if strings.Contains(s, sub) {
				return true
			}
		}
		return false
	}
	switch {
	case containsAny(t.pre, "jina-v2-de", "jina-v2-es", "jina-v2-code") || containsAny(arch, "nomic-bert-moe", "jina-bert-v3"):
		set("<mask>", AttrLStrip, true)
	case containsAny(name, "phi-3", "phi3"):
		for _, id := range t.specials {
			t.attrs[id] |= AttrRStrip
		}
		set("</s>", AttrRStrip, true)
		for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			set(s, AttrRStrip, false)
		}
	case containsAny(name, "modern-bert"):
		set("[MASK]", AttrLStrip, true)
	}
}

// Model returns the vocabulary type (tokenizer.ggml.model).
func (t *Tokenizer) Model() Model { return t.model }

// Pre returns tokenizer.ggml.pre as stored ("" if absent).
func (t *Tokenizer) Pre() string { return t.pre }

// NumTokens returns the vocabulary size.
func (t *Tokenizer) NumTokens() int { return len(t.texts) }

// BOS returns the beginning-of-sequence id, or Null.
func (t *Tokenizer) BOS() int32 { return t.special.bos }

// EOS returns the end-of-sequence id, or Null.
func (t *Tokenizer) EOS() int32 { return t.special.eos }

// EOT returns the end-of-turn id, or Null.
func (t *Tokenizer) EOT() int32 { return t.special.eot }

// EOM returns the end-of-message id, or Null.
func (t *Tokenizer) EOM() int32 { return t.special.eom }

// PAD returns the padding id, or Null.
func (t *Tokenizer) PAD() int32 { return t.special.pad }

// UNK returns the unknown-token id, or Null.
func (t *Tokenizer) UNK() int32 { return t.special.unk }

// NL returns the newline token id, or Null.
func (t *Tokenizer) NL() int32 { return t.special.nl }

// FIM returns the fill-in-the-middle ids: prefix, suffix, middle, pad,
// repo and file separator (Null when absent).
func (t *Tokenizer) FIM() (pre, suf, mid, pad, rep, sep int32) {
	s := t.special
	return s.fimPre, s.fimSuf, s.fimMid, s.fimPad, s.fimRep, s.fimSep
}

// AddBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// AddEOS reports whether Encode with addSpecial appends EOS.
func (t *Tokenizer) AddEOS() bool { return t.addEOS }

// IsEOG reports whether id ends generation (EOS, EOT, EOM, and the
// tokens llama.cpp recognises by text, such as <|im_end|>).
func (t *Tokenizer) IsEOG(id int32) bool {
	i := sort.Search(len(t.eog), func(i int) bool { return t.eog[i] >= id })
	return i < len(t.eog) && t.eog[i] == id
}

// EOG returns the end-of-generation ids in ascending order.
func (t *Tokenizer) EOG() []int32 { return append([]int32(nil), t.eog...) }

// Attr returns the attributes of id (0 when out of range).
func (t *Tokenizer) Attr(id int32) Attr {
	if id < 0 || int(id) >= len(t.attrs) {
		return 0
	}
	return t.attrs[id]
}

// IsControl reports whether id is a control token (BOS, <|im_end|>, ...),
// which detokenizes to nothing unless special tokens are rendered.
func (t *Tokenizer) IsControl(id int32) bool { return t.Attr(id)&AttrControl != 0 }

// TokenText returns the vocabulary text of id as stored in the GGUF
// (special tokens such as "<|im_start|>" verbatim; "" when out of range).
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.texts) {
		return ""
	}
	return t.texts[id]
}

// TokenID returns the id whose vocabulary text is exactly text.
func (t *Tokenizer) TokenID(text string) (int32, bool) {
	id, ok := t.ids[text]
	return id, ok
}

// SpecialTokens returns the ids of the control, user-defined and unknown
// tokens, longest text first (the order Encode matches them in).
func (t *Tokenizer) SpecialTokens() []int32 { return append([]int32(nil), t.specials...) }
