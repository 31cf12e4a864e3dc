package audit

import "testing"

func TestActionFor(t *testing.T) {
	tests := []struct{ method, pattern, want string }{
		{"POST", "POST /api/v1/stacks", "stack.create"},
		{"POST", "POST /api/v1/stacks/{id}/apply", "stack.apply"},
		{"POST", "POST /api/v1/machines/{id}/stop", "machine.stop"},
		{"DELETE", "DELETE /api/v1/credentials/{id}", "credential.delete"},
		{"DELETE", "DELETE /api/v1/credentials/{id}/bootstrap", "credential.bootstrap.delete"},
		{"POST", "POST /api/v1/credentials/{id}/bootstrap", "credential.bootstrap"},
		{"POST", "POST /api/v1/machines/{id}/shares", "machine.share"},
		{"DELETE", "DELETE /api/v1/machines/{id}/shares/{user_id}", "machine.share.delete"},
		{"PUT", "PUT /api/v1/budgets/{scope}", "budget.set"},
		{"PATCH", "PATCH /api/v1/templates/{id}", "template.update"},
		{"POST", "POST /api/v1/rating/module_config/hashmap/mappings", "rating.module_config.hashmap.mapping"},
		{"POST", "POST /api/v1/users", "user.create"},
		{"POST", "POST /api/v1/policies", "policy.create"},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			if got := ActionFor(tt.method, tt.pattern); got != tt.want {
				t.Errorf("ActionFor(%s, %q) = %q, want %q", tt.method, tt.pattern, got, tt.want)
			}
		})
	}
}

func TestTargetFor(t *testing.T) {
	values := map[string]string{"id": "stk-1", "scope": "user:u-1"}
	get := func(k string) string { return values[k] }
	tests := []struct{ pattern, want string }{
		{"POST /api/v1/stacks/{id}/apply", "stack/stk-1"},
		{"POST /api/v1/stacks", ""},
		{"PUT /api/v1/budgets/{scope}", "budget/user:u-1"},
		{"POST /api/v1/users", ""},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			if got := TargetFor(tt.pattern, get); got != tt.want {
				t.Errorf("TargetFor(%q) = %q, want %q", tt.pattern, got, tt.want)
			}
		})
	}
}
