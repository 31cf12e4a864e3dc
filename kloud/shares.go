package kloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/user"
)

// machineAccess returns the machine when actor may use it: its owner and
// admins always, another user through a share (returned too). Anyone else
// gets the same 404 as for a machine that does not exist.
func (s *Server) machineAccess(ctx context.Context, actor *user.User, id string) (*stack.Machine, *store.Share, error) {
	m, err := s.st.GetMachine(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, notFound("machine", id)
	case err != nil:
		return nil, nil, fmt.Errorf("get machine %s: %w", ident(id), err)
	}
	noteAuditOwner(ctx, m.OwnerID)
	if actor.CanSee(m.OwnerID) {
		return m, nil, nil
	}
	sh, err := s.st.GetShare(ctx, m.ID, actor.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, notFound("machine", id)
	case err != nil:
		return nil, nil, fmt.Errorf("get share of machine %s: %w", m.ID, err)
	}
	return m, sh, nil
}

// machineControl returns the machine when actor may start and stop it:
// its owner, admins, and users it is shared with for control. A user with
// a "use" share gets 403: they know the machine, but may not control it.
func (s *Server) machineControl(ctx context.Context, actor *user.User, id string) (*stack.Machine, error) {
	m, sh, err := s.machineAccess(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	if sh != nil && sh.Permission != store.PermControl {
		return nil, fmt.Errorf("%w: machine %s is shared with you to use; starting and stopping it needs %s", ErrForbidden, m.ID, store.PermControl)
	}
	return m, nil
}

// machineOwned returns the machine when actor owns it or is an admin: only
// they share it.
func (s *Server) machineOwned(ctx context.Context, actor *user.User, id string) (*stack.Machine, error) {
	m, sh, err := s.machineAccess(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	if sh != nil {
		return nil, fmt.Errorf("%w: only the owner of machine %s or an admin shares it", ErrForbidden, m.ID)
	}
	return m, nil
}

func shareView(sh *store.Share) client.Share {
	return client.Share{MachineID: sh.MachineID, UserID: sh.UserID, OwnerID: sh.OwnerID, Permission: sh.Permission,
		CreatedBy: sh.CreatedBy, CreatedAt: sh.CreatedAt}
}

// sharedJob returns job id when it works on a machine shared with actor
// for control (they may start and stop it, so they follow those jobs),
// nil otherwise.
func (s *Server) sharedJob(ctx context.Context, actor *user.User, id string) *jobs.Job {
	j, err := s.st.GetJob(ctx, id)
	if err != nil || j.MachineID == "" {
		return nil
	}
	sh, err := s.st.GetShare(ctx, j.MachineID, actor.ID)
	if err != nil || sh.Permission != store.PermControl {
		return nil
	}
	return j
}

// handleCreateShare shares a machine with a user: POST
// /api/v1/machines/{id}/shares {user_id, permission}. Sharing again
// changes the permission.
func (s *Server) handleCreateShare(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	actor := actorFrom(ctx)
	m, err := s.machineOwned(ctx, actor, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req client.ShareRequest
	if err := decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	noteAuditDetail(ctx, "user "+clipInput(req.UserID)+", permission "+clipInput(req.Permission))
	sh, err := s.share(ctx, actor, m, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, shareView(sh))
}

// share checks a share request and stores it.
func (s *Server) share(ctx context.Context, actor *user.User, m *stack.Machine, req client.ShareRequest) (*store.Share, error) {
	if req.UserID == "" {
		return nil, unprocessable("user_id", "user_id is required")
	}
	if req.Permission != store.PermUse && req.Permission != store.PermControl {
		return nil, unprocessable("permission", "permission %s is not one of %s, %s", quote(req.Permission), store.PermUse, store.PermControl)
	}
	if req.UserID == m.OwnerID {
		return nil, unprocessable("user_id", "user %s owns machine %s; share it with someone else", ident(req.UserID), m.ID)
	}
	if req.UserID == actor.ID {
		return nil, unprocessable("user_id", "you cannot share a machine with yourself")
	}
	if _, err := s.st.GetUser(ctx, req.UserID); errors.Is(err, store.ErrNotFound) {
		return nil, unprocessable("user_id", "no user %s", ident(req.UserID))
	} else if err != nil {
		return nil, fmt.Errorf("get user %s: %w", ident(req.UserID), err)
	}
	sh := &store.Share{MachineID: m.ID, UserID: req.UserID, OwnerID: m.OwnerID, Permission: req.Permission, CreatedBy: actor.ID, CreatedAt: s.now()}
	if err := s.st.PutShare(ctx, sh); err != nil {
		return nil, fmt.Errorf("share machine %s: %w", m.ID, err)
	}
	return sh, nil
}

// handleListShares lists a machine's shares: GET /api/v1/machines/{id}/shares.
func (s *Server) handleListShares(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, err := s.machineOwned(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	l, err := parseList(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	shares, err := s.st.ListShares(ctx, m.ID)
	listPage(s, w, r, l, shares, err, positionKey, shareView)
}

// handleDeleteShare revokes a share: DELETE
// /api/v1/machines/{id}/shares/{user_id}. The user's open terminal
// sessions on the machine close at once on this replica, and within
// revokeCheck on any other.
func (s *Server) handleDeleteShare(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	m, err := s.machineOwned(ctx, actorFrom(ctx), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	userID := r.PathValue("user_id")
	noteAuditDetail(ctx, "user "+clipInput(userID)+"; their open terminal sessions on the machine closed")
	if err := s.st.DeleteShare(ctx, m.ID, userID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("machine %s is not shared with user %s: %w", m.ID, ident(userID), store.ErrNotFound)
		}
		s.writeError(w, r, err)
		return
	}
	s.terms.revoke(m.ID, userID)
	w.WriteHeader(http.StatusNoContent)
}

// withShared adds to a member's machine list (body, a JSON array) the
// machines shared with them, marked shared with their owner and the
// permission. Admins see every machine already; a member without shares
// gets body unchanged.
func (s *Server) withShared(ctx context.Context, actor *user.User, stackID string, body []byte) ([]byte, error) {
	if actor.IsAdmin() {
		return body, nil
	}
	shares, err := s.st.ListUserShares(ctx, actor.ID)
	if err != nil || len(shares) == 0 {
		return body, err
	}
	var views []json.RawMessage
	if err := json.Unmarshal(body, &views); err != nil {
		return nil, fmt.Errorf("decode machine list: %w", err)
	}
	at := s.viewTime()
	for _, sh := range shares {
		m, err := s.st.GetMachine(ctx, sh.MachineID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get shared machine %s: %w", sh.MachineID, err)
		}
		if stackID != "" && m.StackID != stackID {
			continue
		}
		b, err := json.Marshal(s.sharedView(m, sh, at))
		if err != nil {
			return nil, fmt.Errorf("encode machine: %w", err)
		}
		views = append(views, b)
	}
	return json.Marshal(views)
}

// sharedView is a machine as the user it is shared with sees it.
func (s *Server) sharedView(m *stack.Machine, sh *store.Share, at time.Time) client.Machine {
	v := s.machineView(m, at)
	if sh != nil {
		v.Shared, v.Permission = true, sh.Permission
	}
	return v
}
