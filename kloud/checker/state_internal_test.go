package checker

import (
	"slices"
	"testing"
)

func TestStateMachineIDs(t *testing.T) {
	tests := []struct {
		name  string
		state string
		want  []string
	}{
		{"sandbox machines", `{"resources":[{"mode":"managed","type":"sandbox_machine","instances":[{"attributes":{"id":"vm-1"}},{"attributes":{"id":"vm-2"}}]}]}`, []string{"vm-1", "vm-2"}},
		{"other resources", `{"resources":[{"mode":"managed","type":"aws_instance","instances":[{"attributes":{"id":"i-1"}}]}]}`, nil},
		{"data sources", `{"resources":[{"mode":"data","type":"sandbox_machine","instances":[{"attributes":{"id":"vm-1"}}]}]}`, nil},
		{"an instance without an id", `{"resources":[{"mode":"managed","type":"sandbox_machine","instances":[{"attributes":{}}]}]}`, nil},
		{"not JSON", `terraform`, nil},
		{"empty", ``, nil},
	}
	for _, tt := range tests {
		if got := stateMachineIDs([]byte(tt.state)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
