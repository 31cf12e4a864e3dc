// Package hashmap is CloudKitty's hashmap rating module as an engine: rules
// (services, fields, groups, mappings, thresholds) compiled once into maps
// keyed by service, field and value, and a pricer that gives every data
// point the price CloudKitty's hashmap gives it, digit for digit, including
// Python's 28-significant-digit decimal rounding. The pricer classifies a
// point by the rules it matches, computes each class's coefficients once
// and prices the common case with int64 fixed-point arithmetic, falling back
// to decimal arithmetic whenever a value would not fit exactly.
package hashmap

import (
	"errors"
	"fmt"
	"slices"

	"github.com/kloud/kloud/errdefs"
	"github.com/shopspring/decimal"
)

// DefaultGroup is the name CloudKitty gives the group of rules that have
// none. A group really named so prices together with ungrouped rules, as in
// CloudKitty, which keys groups by name.
const DefaultGroup = "_DEFAULT_"

// ErrNotANumber is returned when a point's value of a field that has
// thresholds is not a decimal number (CloudKitty fails the same way).
var ErrNotANumber = errors.New("field value is not a number")

// FieldError is a rule or request that is not valid; Field names the JSON
// field at fault. It matches errdefs.ErrInvalid with errors.Is.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap lets errors.Is match errdefs.ErrInvalid.
func (e *FieldError) Unwrap() error { return errdefs.ErrInvalid }

type ruleType uint8

const (
	typeFlat ruleType = iota
	typeRate
)

func parseType(field, t string) (ruleType, error) {
	switch t {
	case CostFlat:
		return typeFlat, nil
	case CostRate:
		return typeRate, nil
	}
	return 0, &FieldError{Field: field, Reason: fmt.Sprintf("%q is not one of flat, rate", t)}
}

// ValidateMapping checks a mapping's shape as CloudKitty does: a type of
// flat or rate, exactly one of service_id and field_id, a value for a field
// mapping and none for a service mapping. It does not check that the ids
// exist.
func ValidateMapping(m *Mapping) error {
	if m == nil {
		return &FieldError{Field: "mapping", Reason: "required"}
	}
	if _, err := parseType("type", m.Type); err != nil {
		return err
	}
	switch {
	case m.ServiceID == "" && m.FieldID == "":
		return &FieldError{Field: "service_id", Reason: "one of service_id and field_id is required"}
	case m.ServiceID != "" && m.FieldID != "":
		return &FieldError{Field: "field_id", Reason: "a mapping has a service_id or a field_id, not both"}
	case m.FieldID != "" && m.Value == "":
		return &FieldError{Field: "value", Reason: "a field mapping needs a value"}
	case m.ServiceID != "" && m.Value != "":
		return &FieldError{Field: "value", Reason: "a service mapping has no value"}
	}
	return nil
}

// ValidateThreshold checks a threshold's shape: a type of flat or rate and
// exactly one of service_id and field_id.
func ValidateThreshold(t *Threshold) error {
	if t == nil {
		return &FieldError{Field: "threshold", Reason: "required"}
	}
	if _, err := parseType("type", t.Type); err != nil {
		return err
	}
	switch {
	case t.ServiceID == "" && t.FieldID == "":
		return &FieldError{Field: "service_id", Reason: "one of service_id and field_id is required"}
	case t.ServiceID != "" && t.FieldID != "":
		return &FieldError{Field: "field_id", Reason: "a threshold has a service_id or a field_id, not both"}
	}
	return nil
}

// mapping is a compiled mapping: the index of its group within its service.
type mapping struct {
	group int
	typ   ruleType
	cost  decimal.Decimal
}

// threshold is a compiled threshold.
type threshold struct {
	group int
	level decimal.Decimal
	typ   ruleType
	cost  decimal.Decimal
}

// field is a field of a service with at least one rule.
type field struct {
	name string
	// table finds a mapping value's 1-based index into byValue.
	table valueTable
	// byValue holds, for each value, the mappings it matches, in the order
	// CloudKitty applies them (groups by first appearance).
	byValue [][]mapping
	// thresholds in CloudKitty's order; levels are their distinct levels,
	// ascending.
	thresholds []threshold
	levels     []decimal.Decimal
	// radix is the number of classes of the field's values:
	// (len(byValue)+1) × (len(levels)+1).
	radix uint64
}

// service is a service's compiled rules.
type service struct {
	name   string
	groups []string // group names, indexed by mapping.group
	// mappings are the service mappings, thresholds the service thresholds,
	// in CloudKitty's order.
	mappings   []mapping
	thresholds []threshold
	levels     []decimal.Decimal
	levelsFx   []fx // nil unless every level fits
	fields     []*field

	// Combination space: a point's class is
	// svcPos*svcStride + Σ class_f*strides[f]; size is the number of classes
	// and sizeOK whether that fits in a uint64.
	strides   []uint64
	svcStride uint64
	size      uint64
	sizeOK    bool
}

// Rules is a compiled hashmap configuration. It is immutable and safe for
// concurrent use; a Pricer (one per goroutine) prices with it.
type Rules struct {
	services map[string]*service
}

// Services returns the names of the services that have rules, sorted.
func (r *Rules) Services() []string {
	out := make([]string, 0, len(r.services))
	for n := range r.services {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Fields returns the names of the fields of service, the desc keys its
// rules read from a point (none for a service without rules).
func (r *Rules) Fields(service string) []string {
	s := r.services[service]
	if s == nil {
		return nil
	}
	out := make([]string, len(s.fields))
	for i, f := range s.fields {
		out[i] = f.name
	}
	return out
}

// ordered is an insertion-ordered map, the behaviour of the Python dicts
// CloudKitty loads rules into: a key keeps its first position, its value is
// the last one stored.
type ordered[K comparable, V any] struct {
	keys []K
	vals map[K]V
}

func (o *ordered[K, V]) put(k K, v V) {
	if o.vals == nil {
		o.vals = map[K]V{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *ordered[K, V]) get(k K) (V, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// levelKey identifies a level the way a Python dict keyed by Decimal does:
// equal values are the same key.
func levelKey(d decimal.Decimal) string { return d.String() }

type rawThreshold struct {
	level decimal.Decimal
	typ   ruleType
	cost  decimal.Decimal
}

type rawMapping struct {
	typ  ruleType
	cost decimal.Decimal
}

// builder collects a service's rules in CloudKitty's dict shapes before
// they are flattened.
type builder struct {
	svc        *service
	groupIdx   map[string]int
	mappings   ordered[string, rawMapping]                     // group → mapping
	thresholds ordered[string, *ordered[string, rawThreshold]] // group → level → threshold
	fields     []*fieldBuilder
}

type fieldBuilder struct {
	name       string
	mappings   ordered[string, *ordered[string, rawMapping]]   // group → value → mapping
	thresholds ordered[string, *ordered[string, rawThreshold]] // group → level → threshold
}

func (b *builder) group(name string) int {
	if i, ok := b.groupIdx[name]; ok {
		return i
	}
	i := len(b.svc.groups)
	b.svc.groups = append(b.svc.groups, name)
	b.groupIdx[name] = i
	return i
}

func putThreshold(o *ordered[string, *ordered[string, rawThreshold]], group string, t rawThreshold) {
	inner, ok := o.get(group)
	if !ok {
		inner = &ordered[string, rawThreshold]{}
		o.put(group, inner)
	}
	inner.put(levelKey(t.level), t)
}

// Compile checks and compiles a hashmap configuration. Rules are taken in
// the order the slices hold them (the store's creation order), which is the
// order CloudKitty applies them in; it only matters to the last of 28
// significant digits. Rules referring to an unknown service, field or
// group, and malformed rules, are errors naming the rule.
func Compile(in *RuleSet) (*Rules, error) {
	if in == nil {
		in = &RuleSet{}
	}
	groups := map[string]string{}
	for _, g := range in.Groups {
		groups[g.ID] = g.Name
	}
	groupName := func(kind, id, groupID string) (string, error) {
		if groupID == "" {
			return DefaultGroup, nil
		}
		n, ok := groups[groupID]
		if !ok {
			return "", fmt.Errorf("compile hashmap: %s %s: group %s does not exist", kind, id, groupID)
		}
		return n, nil
	}

	builders := map[string]*builder{} // by service id
	var order []*builder
	for _, s := range in.Services {
		if _, dup := builders[s.ID]; dup {
			return nil, fmt.Errorf("compile hashmap: service %s listed twice", s.ID)
		}
		b := &builder{svc: &service{name: s.Name}, groupIdx: map[string]int{}}
		builders[s.ID] = b
		order = append(order, b)
	}
	fields := map[string]*fieldBuilder{} // by field id
	for _, f := range in.Fields {
		b, ok := builders[f.ServiceID]
		if !ok {
			return nil, fmt.Errorf("compile hashmap: field %s: service %s does not exist", f.ID, f.ServiceID)
		}
		for _, other := range b.fields {
			if other.name == f.Name {
				return nil, fmt.Errorf("compile hashmap: field name %q used twice in service %s", f.Name, f.ServiceID)
			}
		}
		fb := &fieldBuilder{name: f.Name}
		fields[f.ID] = fb
		b.fields = append(b.fields, fb)
	}
	fieldOwner := map[*fieldBuilder]*builder{}
	for _, b := range order {
		for _, fb := range b.fields {
			fieldOwner[fb] = b
		}
	}

	for _, m := range in.Mappings {
		if err := ValidateMapping(m); err != nil {
			return nil, fmt.Errorf("compile hashmap: mapping %s: %w", m.ID, err)
		}
		typ, _ := parseType("type", m.Type)
		g, err := groupName("mapping", m.ID, m.GroupID)
		if err != nil {
			return nil, err
		}
		if m.ServiceID != "" {
			b, ok := builders[m.ServiceID]
			if !ok {
				return nil, fmt.Errorf("compile hashmap: mapping %s: service %s does not exist", m.ID, m.ServiceID)
			}
			b.group(g)
			b.mappings.put(g, rawMapping{typ: typ, cost: m.Cost})
			continue
		}
		fb, ok := fields[m.FieldID]
		if !ok {
			return nil, fmt.Errorf("compile hashmap: mapping %s: field %s does not exist", m.ID, m.FieldID)
		}
		fieldOwner[fb].group(g)
		inner, ok := fb.mappings.get(g)
		if !ok {
			inner = &ordered[string, rawMapping]{}
			fb.mappings.put(g, inner)
		}
		inner.put(m.Value, rawMapping{typ: typ, cost: m.Cost})
	}
	for _, t := range in.Thresholds {
		if err := ValidateThreshold(t); err != nil {
			return nil, fmt.Errorf("compile hashmap: threshold %s: %w", t.ID, err)
		}
		typ, _ := parseType("type", t.Type)
		g, err := groupName("threshold", t.ID, t.GroupID)
		if err != nil {
			return nil, err
		}
		raw := rawThreshold{level: t.Level, typ: typ, cost: t.Cost}
		if t.ServiceID != "" {
			b, ok := builders[t.ServiceID]
			if !ok {
				return nil, fmt.Errorf("compile hashmap: threshold %s: service %s does not exist", t.ID, t.ServiceID)
			}
			b.group(g)
			putThreshold(&b.thresholds, g, raw)
			continue
		}
		fb, ok := fields[t.FieldID]
		if !ok {
			return nil, fmt.Errorf("compile hashmap: threshold %s: field %s does not exist", t.ID, t.FieldID)
		}
		fieldOwner[fb].group(g)
		putThreshold(&fb.thresholds, g, raw)
	}

	out := &Rules{services: make(map[string]*service, len(order))}
	for _, b := range order {
		s := b.finish()
		if _, dup := out.services[s.name]; dup {
			return nil, fmt.Errorf("compile hashmap: service name %q used twice", s.name)
		}
		out.services[s.name] = s
	}
	return out, nil
}

func flattenThresholds(b *builder, o *ordered[string, *ordered[string, rawThreshold]]) ([]threshold, []decimal.Decimal) {
	var ts []threshold
	var levels []decimal.Decimal
	for _, g := range o.keys {
		inner := o.vals[g]
		for _, k := range inner.keys {
			t := inner.vals[k]
			ts = append(ts, threshold{group: b.group(g), level: t.level, typ: t.typ, cost: t.cost})
			levels = append(levels, t.level)
		}
	}
	slices.SortFunc(levels, func(a, b decimal.Decimal) int { return a.Cmp(b) })
	levels = slices.CompactFunc(levels, func(a, b decimal.Decimal) bool { return a.Equal(b) })
	return ts, levels
}

func (b *builder) finish() *service {
	s := b.svc
	for _, g := range b.mappings.keys {
		m := b.mappings.vals[g]
		s.mappings = append(s.mappings, mapping{group: b.group(g), typ: m.typ, cost: m.cost})
	}
	s.thresholds, s.levels = flattenThresholds(b, &b.thresholds)
	if lf, ok := levelsToFx(s.levels); ok {
		s.levelsFx = lf
	}
	for _, fb := range b.fields {
		f := &field{name: fb.name}
		index := map[string]int32{}
		var list []string
		for _, g := range fb.mappings.keys {
			for _, v := range fb.mappings.vals[g].keys {
				if _, ok := index[v]; !ok {
					index[v] = int32(len(f.byValue) + 1)
					f.byValue = append(f.byValue, nil)
					list = append(list, v)
				}
			}
		}
		// For each value, its mappings in group order: the order
		// CloudKitty's process_mappings meets them.
		for _, g := range fb.mappings.keys {
			inner := fb.mappings.vals[g]
			for _, v := range inner.keys {
				m := inner.vals[v]
				i := index[v] - 1
				f.byValue[i] = append(f.byValue[i], mapping{group: b.group(g), typ: m.typ, cost: m.cost})
			}
		}
		f.table = newValueTable(list)
		f.thresholds, f.levels = flattenThresholds(b, &fb.thresholds)
		if len(f.byValue) == 0 && len(f.thresholds) == 0 {
			continue // a field without rules changes nothing
		}
		f.radix = uint64(len(f.byValue)+1) * uint64(len(f.levels)+1)
		s.fields = append(s.fields, f)
	}
	// Mixed-radix layout of the classes.
	s.sizeOK = true
	size := uint64(1)
	mulOK := func(a, b uint64) (uint64, bool) {
		if a != 0 && b > ^uint64(0)/a {
			return 0, false
		}
		return a * b, true
	}
	s.strides = make([]uint64, len(s.fields))
	for i, f := range s.fields {
		s.strides[i] = size
		var ok bool
		if size, ok = mulOK(size, f.radix); !ok {
			s.sizeOK = false
			break
		}
	}
	if s.sizeOK {
		s.svcStride = size
		var ok bool
		if size, ok = mulOK(size, uint64(len(s.levels)+1)); !ok {
			s.sizeOK = false
		}
	}
	s.size = size
	return s
}
