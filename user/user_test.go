package user_test

import (
	"testing"

	"github.com/kloud/kloud/user"
)

func TestCanSee(t *testing.T) {
	admin := &user.User{ID: "u-admin", Role: user.RoleAdmin}
	member := &user.User{ID: "u-1", Role: user.RoleMember}
	tests := []struct {
		name  string
		u     *user.User
		owner string
		want  bool
	}{
		{"admin sees another's", admin, "u-1", true},
		{"member sees own", member, "u-1", true},
		{"member does not see another's", member, "u-2", false},
		{"member does not see ownerless", member, "", false},
		{"nobody sees nothing", nil, "u-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.u.CanSee(tt.owner); got != tt.want {
				t.Errorf("CanSee(%q) = %v, want %v", tt.owner, got, tt.want)
			}
		})
	}
}
