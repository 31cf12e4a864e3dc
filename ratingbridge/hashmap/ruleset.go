package hashmap

import "github.com/shopspring/decimal"

// The stored rule types, in CloudKitty's v1 JSON shapes: what an admin
// writes and the store keeps; Compile turns a RuleSet into priced Rules.

// Service is a service rules apply to ("instance").
type Service struct {
	ID   string `json:"service_id"`
	Name string `json:"name"`
}

// Field is a field of a service's points ("size").
type Field struct {
	ID        string `json:"field_id"`
	ServiceID string `json:"service_id"`
	Name      string `json:"name"`
}

// Group groups rules that price together.
type Group struct {
	ID   string `json:"group_id"`
	Name string `json:"name"`
}

// Rule cost types.
const (
	CostFlat = "flat"
	CostRate = "rate"
)

// Mapping is a service mapping (ServiceID set, no Value) or a field
// mapping (FieldID and Value set).
type Mapping struct {
	ID        string          `json:"mapping_id"`
	ServiceID string          `json:"service_id,omitempty"`
	FieldID   string          `json:"field_id,omitempty"`
	GroupID   string          `json:"group_id,omitempty"`
	Value     string          `json:"value,omitempty"`
	Type      string          `json:"type"`
	Cost      decimal.Decimal `json:"cost"`
}

// Threshold is a service threshold (on qty) or a field threshold (on a
// numeric field's value).
type Threshold struct {
	ID        string          `json:"threshold_id"`
	ServiceID string          `json:"service_id,omitempty"`
	FieldID   string          `json:"field_id,omitempty"`
	GroupID   string          `json:"group_id,omitempty"`
	Level     decimal.Decimal `json:"level"`
	Type      string          `json:"type"`
	Cost      decimal.Decimal `json:"cost"`
}

// RuleSet is the whole hashmap configuration at one moment.
type RuleSet struct {
	Services   []*Service
	Fields     []*Field
	Groups     []*Group
	Mappings   []*Mapping
	Thresholds []*Threshold
}
