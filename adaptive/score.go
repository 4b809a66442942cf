package adaptive

import (
	"fmt"
	"math"
	"slices"
)

// DefaultRefTokens is the prompt length whose all-distinct tokens define
// the top of the entropy scale (see Score).
const DefaultRefTokens = 1024

// TTRWindow is the window of the moving-average type/token ratio.
const TTRWindow = 64

// Score is a prompt's complexity and the figures it is made of.
//
// With the prompt's n tokens (ignored ids removed), count c_i of id i, a
// vocabulary of V ids and a reference length R:
//
//	H     = -sum_i (c_i/n) log2(c_i/n)       Shannon entropy of the token distribution, bits
//	Hmax  = log2(min(V, R))                  entropy of R all-distinct tokens, capped by the vocabulary
//	Hnorm = min(1, H / Hmax)                 normalised entropy
//	TTR   = mean over windows of W = 64 consecutive tokens of (distinct ids / W)
//	        (k/n, the plain type/token ratio, when n <= W)
//	score = Hnorm * (1 + TTR) / 2            in [0, 1]; 0 for an empty prompt
//
// Entropy grows with both length and variety (n distinct tokens carry
// log2 n bits), so short prompts score low whatever they say; the
// type/token ratio then discounts repetitive text by up to half. The ratio
// is a moving average over 64-token windows (MATTR) because the plain
// ratio k/n falls as a text grows (Heaps' law: a long natural text repeats
// its common words), which made long prompts score lower than medium ones.
// The score sees token statistics only, never meaning: it is a cheap proxy
// for "how much is going on in this prompt", not a judgement of how hard
// the question is.
type Score struct {
	Value   float64 // the score in [0, 1]
	Entropy float64 // H, bits
	MaxBits float64 // Hmax, bits
	TTR     float64 // moving-average type/token ratio
	Tokens  int     // n
	Types   int     // distinct ids in the whole prompt
}

// String formats the score and its parts.
func (s Score) String() string {
	return fmt.Sprintf("%.3f (H %.2f of %.2f bits, ttr %.2f, %d tokens)", s.Value, s.Entropy, s.MaxBits, s.TTR, s.Tokens)
}

// ComputeScore scores tokens for a vocabulary of vocab ids with reference
// length ref (<= 0: DefaultRefTokens), skipping the ids in ignore (BOS and
// other control tokens a template adds).
func ComputeScore(tokens []int32, vocab, ref int, ignore []int32) Score {
	if ref <= 0 {
		ref = DefaultRefTokens
	}
	ids := make([]int32, 0, len(tokens))
	for _, t := range tokens {
		if !slices.Contains(ignore, t) {
			ids = append(ids, t)
		}
	}
	s := Score{Tokens: len(ids), MaxBits: math.Log2(float64(max(2, min(vocab, ref))))}
	if len(ids) == 0 {
		return s
	}
	s.TTR = movingTTR(ids, TTRWindow)
	slices.Sort(ids)
	n := float64(len(ids))
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] == ids[i] {
			j++
		}
		p := float64(j-i) / n
		s.Entropy -= p * math.Log2(p)
		s.Types++
		i = j
	}
	s.Entropy = max(s.Entropy, 0) // -0 for a single repeated id
	hn := min(1, s.Entropy/s.MaxBits)
	s.Value = min(1, max(0, hn*(1+s.TTR)/2))
	return s
}

// movingTTR is the mean type/token ratio of all windows of w consecutive
// ids (the plain ratio when there are no more than w).
func movingTTR(ids []int32, w int) float64 {
	n := len(ids)
	if n == 0 {
		return 0
	}
	w = min(w, n)
	count := map[int32]int{}
	distinct := 0
	for _, id := range ids[:w] {
		if count[id] == 0 {
			distinct++
		}
		count[id]++
	}
	sum := distinct
	for i := w; i < n; i++ {
		if count[ids[i]] == 0 {
			distinct++
		}
		count[ids[i]]++
		count[ids[i-w]]--
		if count[ids[i-w]] == 0 {
			distinct--
		}
		sum += distinct
	}
	return float64(sum) / float64((n-w+1)*w)
}
