package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/store"
)

// The collections of machine access (issue 11): one document per
// machine's tunnel holder (_id the machine id) and one per share (_id
// machine/user, so the pair is unique without another index). A machine's
// last activity lives in its machine_seen document (field act).
const (
	tunnelsColl = "machine_tunnels"
	sharesColl  = "machine_shares"
)

type tunnelDoc struct {
	ID          string `bson:"_id"`
	Replica     string `bson:"replica"`
	ConnID      string `bson:"conn_id"`
	ConnectedAt int64  `bson:"connected_at"`
}

// PutTunnel records which replica holds a machine's tunnel.
func (s *Store) PutTunnel(ctx context.Context, t *store.Tunnel) error {
	if err := store.CheckTunnel(t); err != nil {
		return err
	}
	at := store.NowOr(s.now, t.ConnectedAt)
	_, err := s.db.Collection(tunnelsColl).ReplaceOne(ctx, byID(t.MachineID),
		tunnelDoc{ID: t.MachineID, Replica: t.Replica, ConnID: t.ConnID, ConnectedAt: at.UnixNano()}, options.Replace().SetUpsert(true))
	if err != nil && mgo.IsDuplicateKeyError(err) {
		// Two first records raced; the other was inserted: replace it.
		_, err = s.db.Collection(tunnelsColl).ReplaceOne(ctx, byID(t.MachineID),
			tunnelDoc{ID: t.MachineID, Replica: t.Replica, ConnID: t.ConnID, ConnectedAt: at.UnixNano()})
	}
	if err != nil {
		return fmt.Errorf("put tunnel of %s: %w", t.MachineID, mapErr(err))
	}
	t.ConnectedAt = at
	return nil
}

// GetTunnel returns the machine's tunnel holder.
func (s *Store) GetTunnel(ctx context.Context, machineID string) (*store.Tunnel, error) {
	if err := store.CheckKey("get tunnel", "machine id", machineID); err != nil {
		return nil, err
	}
	var d tunnelDoc
	if err := one(ctx, s.db.Collection(tunnelsColl), byID(machineID), &d, "tunnel of machine "+machineID); err != nil {
		return nil, fmt.Errorf("get tunnel: %w", err)
	}
	return &store.Tunnel{MachineID: d.ID, Replica: d.Replica, ConnID: d.ConnID, ConnectedAt: store.FromNanos(d.ConnectedAt)}, nil
}

// DeleteTunnel removes the machine's record while it is connID's.
func (s *Store) DeleteTunnel(ctx context.Context, machineID, connID string) error {
	if err := store.CheckKey("delete tunnel", "machine id", machineID); err != nil {
		return err
	}
	_, err := s.db.Collection(tunnelsColl).DeleteOne(ctx, bson.D{{Key: "_id", Value: machineID}, {Key: "conn_id", Value: connID}})
	if err != nil {
		return fmt.Errorf("delete tunnel of %s: %w", machineID, mapErr(err))
	}
	return nil
}

type shareDoc struct {
	ID         string `bson:"_id"`
	MachineID  string `bson:"machine_id"`
	UserID     string `bson:"user_id"`
	OwnerID    string `bson:"owner_id"`
	Permission string `bson:"permission"`
	CreatedBy  string `bson:"created_by"`
	CreatedAt  int64  `bson:"created_at"`
}

func (d *shareDoc) share() *store.Share {
	return &store.Share{MachineID: d.MachineID, UserID: d.UserID, OwnerID: d.OwnerID, Permission: d.Permission,
		CreatedBy: d.CreatedBy, CreatedAt: store.FromNanos(d.CreatedAt)}
}

func shareID(machineID, userID string) string { return machineID + "/" + userID }

// PutShare creates a share or changes its permission, in one upsert.
func (s *Store) PutShare(ctx context.Context, sh *store.Share) error {
	if err := store.CheckShare(sh); err != nil {
		return err
	}
	at := store.NowOr(s.now, sh.CreatedAt)
	id := shareID(sh.MachineID, sh.UserID)
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "permission", Value: sh.Permission}}},
		{Key: "$setOnInsert", Value: bson.D{{Key: "machine_id", Value: sh.MachineID}, {Key: "user_id", Value: sh.UserID},
			{Key: "owner_id", Value: sh.OwnerID}, {Key: "created_by", Value: sh.CreatedBy}, {Key: "created_at", Value: at.UnixNano()}}},
	}
	c := s.db.Collection(sharesColl)
	_, err := c.UpdateOne(ctx, byID(id), update, options.Update().SetUpsert(true))
	if err != nil && mgo.IsDuplicateKeyError(err) {
		_, err = c.UpdateOne(ctx, byID(id), update)
	}
	if err != nil {
		return fmt.Errorf("put share of %s with %s: %w", sh.MachineID, sh.UserID, mapErr(err))
	}
	var d shareDoc
	if err := one(ctx, c, byID(id), &d, "share "+id); err != nil {
		return fmt.Errorf("put share of %s with %s: %w", sh.MachineID, sh.UserID, err)
	}
	sh.CreatedAt = store.FromNanos(d.CreatedAt)
	return nil
}

// GetShare returns one share.
func (s *Store) GetShare(ctx context.Context, machineID, userID string) (*store.Share, error) {
	if err := store.CheckKey("get share", "machine id", machineID); err != nil {
		return nil, err
	}
	if err := store.CheckKey("get share", "user id", userID); err != nil {
		return nil, err
	}
	var d shareDoc
	if err := one(ctx, s.db.Collection(sharesColl), byID(shareID(machineID, userID)), &d, "share of machine "+machineID+" with user "+userID); err != nil {
		return nil, fmt.Errorf("get share: %w", err)
	}
	return d.share(), nil
}

func (s *Store) listShares(ctx context.Context, key, value, op string) ([]*store.Share, error) {
	if err := store.CheckKey(op, key, value); err != nil {
		return nil, err
	}
	docs, err := allOf[shareDoc](ctx, s.db.Collection(sharesColl), bson.D{{Key: key, Value: value}}, options.Find().SetSort(sortBy("created_at", "_id")))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := make([]*store.Share, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].share())
	}
	return out, nil
}

// ListShares returns a machine's shares, oldest first.
func (s *Store) ListShares(ctx context.Context, machineID string) ([]*store.Share, error) {
	return s.listShares(ctx, "machine_id", machineID, "list shares")
}

// ListUserShares returns the shares granted to a user, oldest first.
func (s *Store) ListUserShares(ctx context.Context, userID string) ([]*store.Share, error) {
	return s.listShares(ctx, "user_id", userID, "list user shares")
}

// DeleteShare removes a share.
func (s *Store) DeleteShare(ctx context.Context, machineID, userID string) error {
	if err := store.CheckKey("delete share", "machine id", machineID); err != nil {
		return err
	}
	if err := store.CheckKey("delete share", "user id", userID); err != nil {
		return err
	}
	res, err := s.db.Collection(sharesColl).DeleteOne(ctx, byID(shareID(machineID, userID)))
	if err != nil {
		return fmt.Errorf("delete share: %w", mapErr(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete share: %w", store.NotFoundf("share of machine %s with user %s", machineID, userID))
	}
	return nil
}

// TouchMachineActivity records activity on a machine in its machine_seen
// document (field act, never moving back).
func (s *Store) TouchMachineActivity(ctx context.Context, id string, at time.Time) error {
	an, err := store.CheckTouch(id, s.nowOr(at))
	if err != nil {
		return err
	}
	var d machineDoc
	if err := s.live(ctx, id, &d, options.FindOne().SetProjection(bson.D{
		{Key: "owner_id", Value: 1}, {Key: "stack_id", Value: 1}, {Key: "deleted", Value: 1}})); err != nil {
		return fmt.Errorf("touch activity of machine %s: %w", id, err)
	}
	update := bson.D{
		{Key: "$max", Value: bson.D{{Key: "act", Value: an}}},
		// A machine first seen through its activity: at 0 lets the first
		// TouchMachine (which matches at <= its time) set the last-seen.
		{Key: "$setOnInsert", Value: bson.D{{Key: "at", Value: int64(0)}, {Key: "v", Value: ""}, {Key: "o", Value: d.OwnerID}, {Key: "s", Value: d.StackID}}},
	}
	_, err = s.seen.UpdateOne(ctx, byID(id), update, options.Update().SetUpsert(true))
	if err != nil && mgo.IsDuplicateKeyError(err) {
		_, err = s.seen.UpdateOne(ctx, byID(id), update)
	}
	if err != nil {
		return fmt.Errorf("touch activity of machine %s: %w", id, mapErr(err))
	}
	return nil
}

const sessionsColl = "terminal_sessions"

type sessionDoc struct {
	ID        string `bson:"_id"`
	MachineID string `bson:"machine_id"`
	UserID    string `bson:"user_id"`
	OwnerID   string `bson:"owner_id"`
	Name      string `bson:"name"`
	Replica   string `bson:"replica"`
	OpenedAt  int64  `bson:"opened_at"`
	ClosedAt  int64  `bson:"closed_at"` // 0 while open
	ExitCode  *int   `bson:"exit_code"`
}

// PutTerminalSession records a session opened.
func (s *Store) PutTerminalSession(ctx context.Context, ts *store.TerminalSession) error {
	if err := store.CheckTerminalSession(ts); err != nil {
		return err
	}
	_, err := s.db.Collection(sessionsColl).InsertOne(ctx, sessionDoc{ID: ts.ID, MachineID: ts.MachineID, UserID: ts.UserID, OwnerID: ts.OwnerID,
		Name: ts.Name, Replica: ts.Replica, OpenedAt: ts.OpenedAt.UnixNano()})
	if err != nil {
		return fmt.Errorf("put terminal session %s: %w", ts.ID, mapErr(err))
	}
	ts.OpenedAt = ts.OpenedAt.UTC()
	return nil
}

// CloseTerminalSession records the end of a session, once: the update
// matches only a session not closed yet.
func (s *Store) CloseTerminalSession(ctx context.Context, id string, at time.Time, exitCode *int) error {
	if err := store.CheckKey("close terminal session", "id", id); err != nil {
		return err
	}
	c := s.db.Collection(sessionsColl)
	res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "closed_at", Value: int64(0)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "closed_at", Value: store.NowOr(s.now, at).UnixNano()}, {Key: "exit_code", Value: exitCode}}}})
	if err != nil {
		return fmt.Errorf("close terminal session: %w", mapErr(err))
	}
	if res.MatchedCount == 0 {
		var d sessionDoc
		if err := one(ctx, c, byID(id), &d, "terminal session "+id); err != nil {
			return fmt.Errorf("close terminal session: %w", err)
		}
	}
	return nil
}

// ListTerminalSessions returns a machine's sessions, oldest first.
func (s *Store) ListTerminalSessions(ctx context.Context, machineID string, openOnly bool) ([]*store.TerminalSession, error) {
	if err := store.CheckKey("list terminal sessions", "machine id", machineID); err != nil {
		return nil, err
	}
	f := bson.D{{Key: "machine_id", Value: machineID}}
	if openOnly {
		f = append(f, bson.E{Key: "closed_at", Value: int64(0)})
	}
	docs, err := allOf[sessionDoc](ctx, s.db.Collection(sessionsColl), f, options.Find().SetSort(sortBy("opened_at", "_id")))
	if err != nil {
		return nil, fmt.Errorf("list terminal sessions: %w", err)
	}
	out := make([]*store.TerminalSession, 0, len(docs))
	for _, d := range docs {
		out = append(out, &store.TerminalSession{ID: d.ID, MachineID: d.MachineID, UserID: d.UserID, OwnerID: d.OwnerID, Name: d.Name,
			Replica: d.Replica, OpenedAt: store.FromNanos(d.OpenedAt), ClosedAt: fromOpt(d.ClosedAt), ExitCode: d.ExitCode})
	}
	return out, nil
}

// CloseReplicaSessions closes the sessions replica left open.
func (s *Store) CloseReplicaSessions(ctx context.Context, replica string, at time.Time) (int64, error) {
	if err := store.CheckKey("close replica sessions", "replica", replica); err != nil {
		return 0, err
	}
	res, err := s.db.Collection(sessionsColl).UpdateMany(ctx, bson.D{{Key: "replica", Value: replica}, {Key: "closed_at", Value: int64(0)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "closed_at", Value: store.NowOr(s.now, at).UnixNano()}}}})
	if err != nil {
		return 0, fmt.Errorf("close sessions of replica %s: %w", replica, mapErr(err))
	}
	return res.ModifiedCount, nil
}
