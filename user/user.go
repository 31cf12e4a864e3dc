// Package user defines who calls Kloud's API: users, their roles, and what a
// role may do. The store persists users; the HTTP layer authenticates them.
package user

import "time"

// Role is what a user may do.
type Role string

// The roles.
const (
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// User is a person or program calling the API. TokenHash is the SHA-256 hex
// of the bearer token; the token itself is never stored.
type User struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	TokenHash string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// IsAdmin reports whether u may act on every user's records.
func (u *User) IsAdmin() bool { return u != nil && u.Role == RoleAdmin }

// CanSee reports whether u may see a record owned by ownerID: admins see
// everything, members their own.
func (u *User) CanSee(ownerID string) bool { return u.IsAdmin() || (u != nil && u.ID == ownerID) }
