package toolcall

import (
	"errors"
	"reflect"
	"testing"
)

var fuzzFormats = []Format{
	fm(Content), think(fm(Hermes)), open(think(fm(Hermes))), fm(QwenXML), think(fm(GLM45)), fm(Llama3),
	fm(Mistral), {Kind: Mistral, Think: "[THINK]", EndThink: "[/THINK]", NewID: seqID},
	think(fm(DeepSeek)), fm(DeepSeek31), think(fm(KimiK2)), fm(Harmony),
}

// FuzzStream: no panic, and the stream, cut where the fuzzer says, gives
// what Parse gives for the whole text.
func FuzzStream(f *testing.F) {
	for i, tc := range cases {
		for j, ff := range fuzzFormats {
			if ff.Kind == tc.f.Kind {
				f.Add(tc.text, uint8(j), uint64(i*7919+1))
			}
		}
	}
	f.Fuzz(func(t *testing.T, text string, which uint8, cuts uint64) {
		ff := fuzzFormats[int(which)%len(fuzzFormats)]
		content, reasoning, calls, err := ff.Parse(text)
		var chunks []string
		for s, c := text, cuts; s != ""; c = c>>3 | c<<61 {
			n := min(len(s), 1+int(c%8))
			chunks, s = append(chunks, s[:n]), s[n:]
		}
		sc, sr, scalls, serr := streamAll(ff, chunks)
		if len(calls) == 0 && len(scalls) == 0 {
			calls, scalls = nil, nil
		}
		if sc != content || sr != reasoning || !reflect.DeepEqual(scalls, calls) ||
			errors.Is(err, ErrIncomplete) != errors.Is(serr, ErrIncomplete) || errors.Is(err, ErrArguments) != errors.Is(serr, ErrArguments) {
			t.Fatalf("%s: stream %q %q %+v %v\nparse %q %q %+v %v", ff.Kind, sc, sr, scalls, serr, content, reasoning, calls, err)
		}
	})
}
