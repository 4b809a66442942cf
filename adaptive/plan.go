package adaptive

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/kernels"
)

// Tier is a complexity class.
type Tier int

// Tiers, from least to most precision.
const (
	Simple Tier = iota
	Moderate
	Complex
	numTiers
)

var tierNames = [numTiers]string{"simple", "moderate", "complex"}

func (t Tier) String() string {
	if t >= 0 && t < numTiers {
		return tierNames[t]
	}
	return fmt.Sprintf("tier(%d)", int(t))
}

// ParseTier parses simple, moderate or complex.
func ParseTier(s string) (Tier, error) {
	for i, n := range tierNames {
		if strings.EqualFold(s, n) {
			return Tier(i), nil
		}
	}
	return 0, fmt.Errorf("adaptive: unknown tier %q (want simple, moderate or complex)", s)
}

// Tiers lists the tiers in order.
func Tiers() []Tier { return []Tier{Simple, Moderate, Complex} }

// Band is a range of layers.
type Band int

// Layer bands.
const (
	Early Band = iota
	Middle
	Late
	numBands
)

var bandNames = [numBands]string{"early", "middle", "late"}

func (b Band) String() string {
	if b >= 0 && b < numBands {
		return bandNames[b]
	}
	return fmt.Sprintf("band(%d)", int(b))
}

// Choice is one band's precision: the base weights, or a ggml type the
// base is requantized to.
type Choice struct {
	Base bool
	Type gguf.Type
}

// BaseChoice is the model's own weights.
var BaseChoice = Choice{Base: true}

// TypeChoice is a requantized copy in t.
func TypeChoice(t gguf.Type) Choice { return Choice{Type: t} }

func (c Choice) String() string {
	if c.Base {
		return "base"
	}
	return c.Type.String()
}

// ParseChoice parses "base" or a ggml type with a quantizer (Q2_K, Q4_K,
// Q4_0, Q8_0, F16, ...).
func ParseChoice(s string) (Choice, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "base") {
		return BaseChoice, nil
	}
	t, err := gguf.ParseType(strings.ToUpper(s))
	if err != nil {
		return Choice{}, fmt.Errorf("adaptive: precision %q: want base or a ggml type (Q2_K, Q4_K, ...)", s)
	}
	f, err := kernels.Lookup(t)
	if err != nil || f.Quantize == nil {
		return Choice{}, fmt.Errorf("adaptive: precision %q: this build cannot quantize to %v", s, t)
	}
	if f.NeedsImatrix {
		return Choice{}, fmt.Errorf("adaptive: precision %v needs an importance matrix, which adaptive copies do not have", t)
	}
	return TypeChoice(t), nil
}

// Plan is a tier's precision per band.
type Plan [numBands]Choice

func (p Plan) String() string {
	return p[Early].String() + "," + p[Middle].String() + "," + p[Late].String()
}

// Config is what adaptive precision does. The zero value is not valid:
// start from DefaultConfig.
type Config struct {
	// SimpleBelow and ComplexAbove are the tier thresholds: a score below
	// SimpleBelow is simple, above ComplexAbove complex, moderate between.
	SimpleBelow, ComplexAbove float64
	// Plans gives each tier's precision per band.
	Plans [numTiers]Plan
	// EarlyEnd and MiddleEnd cut the layers into bands: with n layers,
	// early is [0, round(n*EarlyEnd)), middle up to round(n*MiddleEnd),
	// late the rest.
	EarlyEnd, MiddleEnd float64
	// RefTokens is the score's reference length (ComputeScore).
	RefTokens int
	// Ignore lists token ids the score skips (BOS, template tokens).
	Ignore []int32
	// Cache is where lower-precision copies live: "" or "ram" for memory,
	// else a directory for sidecar GGUF files (made if missing), reused by
	// later runs while the model file is unchanged.
	Cache string
	// Threads requantize (0: one per CPU).
	Threads int
	// Forced makes every decision Force's plan, whatever the score (the
	// score is still computed and logged): for measuring one tier.
	Forced bool
	Force  Tier
}

// DefaultConfig returns the seed's table: simple below 0.3 (Q2_K, Q4_K,
// base), moderate up to 0.6 (Q4_K, base, base), complex above (base
// throughout); bands in thirds; copies in RAM.
func DefaultConfig() Config {
	q2, q4 := TypeChoice(gguf.TypeQ2_K), TypeChoice(gguf.TypeQ4_K)
	return Config{
		SimpleBelow: 0.3, ComplexAbove: 0.6,
		Plans: [numTiers]Plan{
			Simple:   {q2, q4, BaseChoice},
			Moderate: {q4, BaseChoice, BaseChoice},
			Complex:  {BaseChoice, BaseChoice, BaseChoice},
		},
		EarlyEnd: 1.0 / 3, MiddleEnd: 2.0 / 3,
		RefTokens: DefaultRefTokens,
	}
}

// Validate checks the thresholds and bands.
func (c *Config) Validate() error {
	switch {
	case !(c.SimpleBelow >= 0 && c.SimpleBelow <= c.ComplexAbove && c.ComplexAbove <= 1):
		return fmt.Errorf("adaptive: thresholds %v, %v: want 0 <= simple <= complex <= 1", c.SimpleBelow, c.ComplexAbove)
	case !(c.EarlyEnd >= 0 && c.EarlyEnd <= c.MiddleEnd && c.MiddleEnd <= 1):
		return fmt.Errorf("adaptive: band ends %v, %v: want 0 <= early <= middle <= 1", c.EarlyEnd, c.MiddleEnd)
	case c.RefTokens < 0 || c.Threads < 0:
		return errors.New("adaptive: RefTokens and Threads must be >= 0")
	case c.Forced && (c.Force < 0 || c.Force >= numTiers):
		return fmt.Errorf("adaptive: forced tier %d does not exist", c.Force)
	}
	for t, p := range c.Plans {
		for b, ch := range p {
			if !ch.Base && !ch.Type.Valid() {
				return fmt.Errorf("adaptive: plan %v %v: no type", Tier(t), Band(b))
			}
		}
	}
	return nil
}

// TierOf maps a score to its tier.
func (c *Config) TierOf(score float64) Tier {
	switch {
	case score < c.SimpleBelow:
		return Simple
	case score > c.ComplexAbove:
		return Complex
	}
	return Moderate
}

// BandOf returns the band of layer l of n.
func (c *Config) BandOf(l, n int) Band {
	e, m := c.bandEnds(n)
	switch {
	case l < e:
		return Early
	case l < m:
		return Middle
	}
	return Late
}

// BandLayers returns the layers [lo, hi) of band b in a model of n layers.
func (c *Config) BandLayers(b Band, n int) (lo, hi int) {
	e, m := c.bandEnds(n)
	switch b {
	case Early:
		return 0, e
	case Middle:
		return e, m
	}
	return m, n
}

func (c *Config) bandEnds(n int) (int, int) {
	e := int(math.Round(float64(n) * c.EarlyEnd))
	m := int(math.Round(float64(n) * c.MiddleEnd))
	return min(e, n), min(max(m, e), n)
}

// ParsePlans sets tier plans from "tier=early,middle,late" items
// separated by ";", for example "simple=Q2_K,Q4_K,base;moderate=Q4_K,base,base".
// Tiers not named keep their plan.
func (c *Config) ParsePlans(s string) error {
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, list, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("adaptive: plan %q: want tier=early,middle,late", item)
		}
		t, err := ParseTier(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		parts := strings.Split(list, ",")
		if len(parts) != int(numBands) {
			return fmt.Errorf("adaptive: plan %q: want three precisions (early, middle, late)", item)
		}
		var p Plan
		for b, s := range parts {
			if p[b], err = ParseChoice(s); err != nil {
				return err
			}
		}
		c.Plans[t] = p
	}
	return nil
}

// PlansString formats the plans as ParsePlans reads them.
func (c *Config) PlansString() string {
	var parts []string
	for t, p := range c.Plans {
		parts = append(parts, Tier(t).String()+"="+p.String())
	}
	return strings.Join(parts, ";")
}

// ParseThresholds sets SimpleBelow and ComplexAbove from "0.3,0.6".
func (c *Config) ParseThresholds(s string) error {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return fmt.Errorf("adaptive: thresholds %q: want SIMPLE,COMPLEX (e.g. 0.3,0.6)", s)
	}
	x, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	y, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("adaptive: thresholds %q: want two numbers", s)
	}
	c.SimpleBelow, c.ComplexAbove = x, y
	return nil
}
