package ratingbridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

// FrameProcessor rates a frame in place, each point's price going in as the
// previous module left it. On an error the frame must be discarded.
type FrameProcessor interface {
	Process(ctx context.Context, f *dataframe.DataFrame) error
}

// Module is a rating module. Rather than keep mutable configuration, a
// module hands out a FrameProcessor built from its configuration as it is
// at Load: the pipeline loads once per rated period (so rule changes apply
// from the next period) and concurrent quotes and processing never share
// state.
type Module interface {
	// Name is the module's id in the API ("hashmap").
	Name() string
	Description() string
	// Default is the module's setting until one is stored.
	Default() Setting
	// Load reads the module's configuration and returns what rates with it.
	Load(ctx context.Context) (FrameProcessor, error)
}

// Setting is whether a module rates and in which order: modules run by
// priority, highest first.
type Setting struct {
	Enabled  bool
	Priority int
}

// Module names.
const (
	ModuleNoop    = "noop"
	ModuleHashmap = "hashmap"
)

// Noop is CloudKitty's noop module: it gives a zero price to points that
// have none. A Go point always has a price (the zero Decimal is 0), so it
// changes nothing; it exists, disabled by default, because CloudKitty's API
// lists it and pipelines are tested with it.
type Noop struct{}

// Name is "noop".
func (Noop) Name() string { return ModuleNoop }

// Description says what the module does.
func (Noop) Description() string {
	return "Dummy test module: every point keeps its price (zero when none)."
}

// Default: disabled, priority 1 (as in CloudKitty).
func (Noop) Default() Setting { return Setting{Enabled: false, Priority: 1} }

// Load returns the module itself: it has no configuration.
func (n Noop) Load(context.Context) (FrameProcessor, error) { return n, nil }

// Fields is none: noop reads no desc key.
func (Noop) Fields(string) []string { return nil }

// Process leaves every price as it is.
func (Noop) Process(ctx context.Context, _ *dataframe.DataFrame) error { return ctx.Err() }

// HashmapRuleSource reads the hashmap module's rules (store.Hashmap).
type HashmapRuleSource interface {
	HashmapRules(ctx context.Context) (*hashmap.RuleSet, error)
}

// Hashmap is CloudKitty's hashmap module over the store's rules.
type Hashmap struct {
	Rules HashmapRuleSource
}

// Name is "hashmap".
func (*Hashmap) Name() string { return ModuleHashmap }

// Description says what the module does.
func (*Hashmap) Description() string {
	return "HashMap rating module: prices points from services, fields, mappings and thresholds."
}

// Default: enabled, priority 1. CloudKitty ships it disabled, but Kloud's
// only collector feeds it and a fresh install should price what the admin
// configures without a second step; with no rules it prices nothing.
func (*Hashmap) Default() Setting { return Setting{Enabled: true, Priority: 1} }

// Load reads and compiles the rules valid now.
func (h *Hashmap) Load(ctx context.Context) (FrameProcessor, error) {
	now := time.Now().UTC()
	return h.LoadPeriod(ctx, now, now)
}

// LoadPeriod reads and compiles the rules whose validity covers the
// period [begin, end).
func (h *Hashmap) LoadPeriod(ctx context.Context, begin, end time.Time) (FrameProcessor, error) {
	raw, err := h.Rules.HashmapRules(ctx)
	if err != nil {
		return nil, fmt.Errorf("load hashmap rules: %w", err)
	}
	if raw, err = validRules(ctx, h.Rules, raw, begin, end); err != nil {
		return nil, fmt.Errorf("load hashmap rules: %w", err)
	}
	rules, err := hashmap.Compile(raw)
	if err != nil {
		return nil, err
	}
	return rules, nil
}

// ErrUnknownModule is returned for a module name no module has; it also
// matches store.ErrNotFound.
var ErrUnknownModule = errors.New("unknown rating module")

type unknownModuleError struct {
	name  string
	known []string
}

func (e *unknownModuleError) Error() string {
	return fmt.Sprintf("rating module %q does not exist; known: %v", e.name, e.known)
}

func (e *unknownModuleError) Is(target error) bool {
	return target == ErrUnknownModule || target == store.ErrNotFound
}

// FieldError is a request value that is not valid; Field names it. It
// matches store.ErrInvalid.
type FieldError = hashmap.FieldError
