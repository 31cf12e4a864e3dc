package ratingbridge

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kloud/kloud/ratingbridge/dataframe"
	"github.com/kloud/kloud/store"
)

// ModuleSettings stores modules' settings (store.RatingModules).
type ModuleSettings interface {
	ListRatingModules(ctx context.Context) ([]*store.RatingModule, error)
	PutRatingModule(ctx context.Context, m *store.RatingModule) error
}

// ModuleInfo is a module as the API shows it (CloudKitty's shape).
type ModuleInfo struct {
	Name        string `json:"module_id"`
	Description string `json:"description"`
	Enabled     bool   `json:"enabled"`
	Priority    int    `json:"priority"`
	HotConfig   bool   `json:"hot_config"`
}

// ModuleUpdate changes a module's setting; nil fields stay as they are.
type ModuleUpdate struct {
	Enabled  *bool `json:"enabled"`
	Priority *int  `json:"priority"`
}

// Pipeline is the rating pipeline: registered modules and their stored
// settings. It holds no mutable state and is safe for concurrent use.
type Pipeline struct {
	settings ModuleSettings
	modules  []Module
}

// NewPipeline returns a pipeline of the given modules (DefaultModules for
// Kloud's). Module names must be unique.
func NewPipeline(settings ModuleSettings, modules ...Module) (*Pipeline, error) {
	seen := map[string]bool{}
	for _, m := range modules {
		if seen[m.Name()] {
			return nil, fmt.Errorf("new rating pipeline: module %q registered twice", m.Name())
		}
		seen[m.Name()] = true
	}
	return &Pipeline{settings: settings, modules: slices.Clone(modules)}, nil
}

// DefaultModules are Kloud's rating modules: noop and hashmap.
func DefaultModules(rules HashmapRuleSource) []Module {
	return []Module{Noop{}, &Hashmap{Rules: rules}}
}

func (p *Pipeline) names() []string {
	out := make([]string, len(p.modules))
	for i, m := range p.modules {
		out[i] = m.Name()
	}
	return out
}

func (p *Pipeline) module(name string) (Module, error) {
	for _, m := range p.modules {
		if m.Name() == name {
			return m, nil
		}
	}
	return nil, &unknownModuleError{name: name, known: p.names()}
}

// ListModules returns every module with its setting, sorted by name.
func (p *Pipeline) ListModules(ctx context.Context) ([]ModuleInfo, error) {
	stored, err := p.settings.ListRatingModules(ctx)
	if err != nil {
		return nil, fmt.Errorf("list rating modules: %w", err)
	}
	byName := make(map[string]*store.RatingModule, len(stored))
	for _, s := range stored {
		byName[s.Name] = s
	}
	out := make([]ModuleInfo, 0, len(p.modules))
	for _, m := range p.modules {
		set := m.Default()
		if s, ok := byName[m.Name()]; ok {
			set = Setting{Enabled: s.Enabled, Priority: s.Priority}
		}
		out = append(out, ModuleInfo{Name: m.Name(), Description: m.Description(),
			Enabled: set.Enabled, Priority: set.Priority, HotConfig: true})
	}
	slices.SortFunc(out, func(a, b ModuleInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// GetModule returns one module; ErrUnknownModule when none has that name.
func (p *Pipeline) GetModule(ctx context.Context, name string) (ModuleInfo, error) {
	if _, err := p.module(name); err != nil {
		return ModuleInfo{}, err
	}
	all, err := p.ListModules(ctx)
	if err != nil {
		return ModuleInfo{}, err
	}
	for _, m := range all {
		if m.Name == name {
			return m, nil
		}
	}
	return ModuleInfo{}, &unknownModuleError{name: name, known: p.names()}
}

// UpdateModule stores a module's new setting and returns the module. The
// change applies from the next period rated and the next quote.
func (p *Pipeline) UpdateModule(ctx context.Context, name string, u ModuleUpdate) (ModuleInfo, error) {
	cur, err := p.GetModule(ctx, name)
	if err != nil {
		return ModuleInfo{}, err
	}
	if u.Enabled != nil {
		cur.Enabled = *u.Enabled
	}
	if u.Priority != nil {
		cur.Priority = *u.Priority
	}
	if err := p.settings.PutRatingModule(ctx, &store.RatingModule{Name: name, Enabled: cur.Enabled, Priority: cur.Priority}); err != nil {
		return ModuleInfo{}, fmt.Errorf("update rating module %s: %w", name, err)
	}
	return cur, nil
}

// Rating is the pipeline as loaded at one moment: the enabled modules, by
// priority (highest first, ties by name), each with its configuration.
type Rating struct {
	stages []stage
}

type stage struct {
	name string
	proc FrameProcessor
}

// Load reads the settings and every enabled module's configuration as it
// prices now (rules whose validity holds now).
func (p *Pipeline) Load(ctx context.Context) (*Rating, error) {
	now := time.Now().UTC()
	return p.LoadPeriod(ctx, now, now)
}

// PeriodModule is a module whose rules have validity dates: LoadPeriod
// returns what rates the period [begin, end) with the rules valid in it.
type PeriodModule interface {
	LoadPeriod(ctx context.Context, begin, end time.Time) (FrameProcessor, error)
}

// LoadPeriod reads the settings and every enabled module's configuration
// as it prices the period [begin, end).
func (p *Pipeline) LoadPeriod(ctx context.Context, begin, end time.Time) (*Rating, error) {
	infos, err := p.ListModules(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(infos, func(a, b ModuleInfo) int { return cmp.Compare(b.Priority, a.Priority) })
	r := &Rating{}
	for _, info := range infos {
		if !info.Enabled {
			continue
		}
		m, err := p.module(info.Name)
		if err != nil {
			return nil, err
		}
		var proc FrameProcessor
		if pm, ok := m.(PeriodModule); ok {
			proc, err = pm.LoadPeriod(ctx, begin, end)
		} else {
			proc, err = m.Load(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("load rating module %s: %w", info.Name, err)
		}
		r.stages = append(r.stages, stage{name: info.Name, proc: proc})
	}
	return r, nil
}

// Modules names the modules that rate, in order.
func (r *Rating) Modules() []string {
	out := make([]string, len(r.stages))
	for i, s := range r.stages {
		out[i] = s.name
	}
	return out
}

// FieldReader is a FrameProcessor that tells which desc keys (groupby or
// metadata) it reads from the points of a service: a point's other keys
// change nothing in its price.
type FieldReader interface {
	Fields(service string) []string
}

// Fields returns the desc keys the modules read from the points of
// service; false when a module does not tell (then any key may count).
func (r *Rating) Fields(service string) ([]string, bool) {
	var out []string
	for _, s := range r.stages {
		fr, ok := s.proc.(FieldReader)
		if !ok {
			return nil, false
		}
		out = append(out, fr.Fields(service)...)
	}
	return out, true
}

// Rate runs the frame through every module in order.
func (r *Rating) Rate(ctx context.Context, f *dataframe.DataFrame) error {
	for _, s := range r.stages {
		if err := s.proc.Process(ctx, f); err != nil {
			return fmt.Errorf("rate with %s: %w", s.name, err)
		}
	}
	return nil
}
