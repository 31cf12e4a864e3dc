package ratingbridge

import (
	"context"
	"fmt"
	"time"

	"github.com/kloud/kloud/ratingbridge/hashmap"
	"github.com/kloud/kloud/store"
)

// ValiditySource reads the validity dates of hashmap rules
// (store.RuleValidities).
type ValiditySource interface {
	ListRuleValidities(ctx context.Context) ([]*store.RuleValidity, error)
}

// validRules keeps the mappings and thresholds of raw whose validity
// covers [begin, end), when src also tells validities; a rule without one
// is valid always.
func validRules(ctx context.Context, src HashmapRuleSource, raw *hashmap.RuleSet, begin, end time.Time) (*hashmap.RuleSet, error) {
	vs, ok := src.(ValiditySource)
	if !ok {
		return raw, nil
	}
	list, err := vs.ListRuleValidities(ctx)
	if err != nil {
		return nil, fmt.Errorf("read rule validities: %w", err)
	}
	if len(list) == 0 {
		return raw, nil
	}
	by := make(map[string]store.RuleValidity, len(list))
	for _, v := range list {
		by[v.RuleID] = *v
	}
	valid := func(id string) bool {
		v, ok := by[id]
		return !ok || v.Covers(begin, end)
	}
	out := *raw
	out.Mappings = nil
	for _, m := range raw.Mappings {
		if valid(m.ID) {
			out.Mappings = append(out.Mappings, m)
		}
	}
	out.Thresholds = nil
	for _, t := range raw.Thresholds {
		if valid(t.ID) {
			out.Thresholds = append(out.Thresholds, t)
		}
	}
	return &out, nil
}
