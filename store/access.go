package store

import (
	"context"
	"time"
)

// ---- machine access: tunnels, shares, activity -------------------------------

// Tunnel records which replica holds a machine's agent tunnel: the address
// other replicas relay terminal requests to (its --advertise-url), and the
// id of the connection, so a replica that lost the tunnel removes only its
// own record, never a newer one.
type Tunnel struct {
	MachineID   string    `json:"machine_id"`
	Replica     string    `json:"replica"`
	ConnID      string    `json:"conn_id"`
	ConnectedAt time.Time `json:"connected_at"`
}

// Tunnels stores tunnel holders, one per machine.
type Tunnels interface {
	// PutTunnel records t, replacing the machine's previous holder.
	PutTunnel(ctx context.Context, t *Tunnel) error
	// GetTunnel returns the machine's holder; ErrNotFound when none.
	GetTunnel(ctx context.Context, machineID string) (*Tunnel, error)
	// DeleteTunnel removes the machine's record if it is still connection
	// connID's; otherwise (or when there is none) it does nothing.
	DeleteTunnel(ctx context.Context, machineID, connID string) error
}

// The permissions a share grants.
const (
	// PermUse lets the user open terminals on the machine.
	PermUse = "use"
	// PermControl lets the user also start and stop it.
	PermControl = "control"
)

// Share is a machine shared with a user who does not own it.
type Share struct {
	MachineID  string    `json:"machine_id"`
	UserID     string    `json:"user_id"`
	OwnerID    string    `json:"owner_id"`
	Permission string    `json:"permission"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
}

// Shares stores machine shares, one per machine and user.
type Shares interface {
	// PutShare creates the share or replaces its permission (keeping its
	// creation time); CreatedAt is set on return.
	PutShare(ctx context.Context, s *Share) error
	// GetShare returns the share of machineID with userID; ErrNotFound
	// when there is none.
	GetShare(ctx context.Context, machineID, userID string) (*Share, error)
	// ListShares returns a machine's shares, oldest first.
	ListShares(ctx context.Context, machineID string) ([]*Share, error)
	// ListUserShares returns the shares granted to a user, oldest first.
	ListUserShares(ctx context.Context, userID string) ([]*Share, error)
	// DeleteShare removes a share; ErrNotFound when there is none.
	DeleteShare(ctx context.Context, machineID, userID string) error
}

// Activity stores when a machine was last in use (a terminal's input, an
// attached terminal, the agent's sign of work). Reads of a machine carry
// it as LastActivity.
type Activity interface {
	// TouchMachineActivity records activity on the machine at at; the
	// stored time never moves back. Like TouchMachine it writes only a
	// narrow record, never the machine's own.
	TouchMachineActivity(ctx context.Context, id string, at time.Time) error
}

// CheckShare checks a share before a backend stores it.
func CheckShare(s *Share) error {
	if s == nil {
		return Invalidf("put share: nil")
	}
	if err := CheckKey("put share", "machine id", s.MachineID); err != nil {
		return err
	}
	if err := CheckKey("put share", "user id", s.UserID); err != nil {
		return err
	}
	if s.Permission != PermUse && s.Permission != PermControl {
		return Invalidf("put share: permission %q: want %s or %s", s.Permission, PermUse, PermControl)
	}
	return nil
}

// CheckTunnel checks a tunnel record before a backend stores it.
func CheckTunnel(t *Tunnel) error {
	if t == nil {
		return Invalidf("put tunnel: nil")
	}
	if err := CheckKey("put tunnel", "machine id", t.MachineID); err != nil {
		return err
	}
	if err := CheckKey("put tunnel", "replica", t.Replica); err != nil {
		return err
	}
	return CheckKey("put tunnel", "connection id", t.ConnID)
}

// TerminalSession is one terminal session on a machine: who opened it,
// through which replica, when, and how it ended.
type TerminalSession struct {
	ID        string    `json:"id"`
	MachineID string    `json:"machine_id"`
	UserID    string    `json:"user_id"`
	OwnerID   string    `json:"owner_id"`
	Name      string    `json:"name,omitempty"`
	Replica   string    `json:"replica,omitempty"`
	OpenedAt  time.Time `json:"opened_at"`
	// ClosedAt is zero while the session is open; ExitCode is the
	// command's status when it ended with one.
	ClosedAt time.Time `json:"closed_at,omitzero"`
	ExitCode *int      `json:"exit_code,omitempty"`
}

// TerminalSessions stores terminal sessions.
type TerminalSessions interface {
	// PutTerminalSession records a session opened; ErrConflict when its
	// id is taken.
	PutTerminalSession(ctx context.Context, s *TerminalSession) error
	// CloseTerminalSession records that a session ended at at, with the
	// command's exit code when there is one; ErrNotFound when there is no
	// such session. Closing it again changes nothing.
	CloseTerminalSession(ctx context.Context, id string, at time.Time, exitCode *int) error
	// ListTerminalSessions returns a machine's sessions, oldest first;
	// with openOnly, only those not closed.
	ListTerminalSessions(ctx context.Context, machineID string, openOnly bool) ([]*TerminalSession, error)
	// CloseReplicaSessions closes, at at, every session still open that
	// replica served (a replica starting again at the same address: its
	// sessions died with the process before) and returns how many.
	CloseReplicaSessions(ctx context.Context, replica string, at time.Time) (int64, error)
}

// CheckTerminalSession checks a session before a backend stores it.
func CheckTerminalSession(s *TerminalSession) error {
	if s == nil {
		return Invalidf("put terminal session: nil")
	}
	for _, f := range []struct{ what, v string }{{"id", s.ID}, {"machine id", s.MachineID}, {"user id", s.UserID}, {"opened at", zeroIf(s.OpenedAt)}} {
		if err := CheckKey("put terminal session", f.what, f.v); err != nil {
			return err
		}
	}
	return nil
}

func zeroIf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return "set"
}
