package mongo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	mgo "go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// Machines are three kinds of document, each with its own writers, so no
// write can undo another:
//
//	machines         the fields PutMachine replaces, and the state the
//	                 machine was created in (its first history record);
//	                 DeleteMachine turns it into a tombstone, so the
//	                 history it opens stays readable
//	machine_history  every later state change, <id>/<v> with v = 2, 3, …
//	machine_seen     when the agent was last heard from (TouchMachine)
//
// A machine's state is its newest history record. SetMachineState appends
// record v+1 after reading record v; the unique _id lets one of two
// concurrent setters win and the other re-reads, so the state and its
// history change together, in one insert (SQLite updates the row and
// appends the record in one transaction).

type stateRec struct {
	State  int    `bson:"state"`
	Reason string `bson:"reason"`
	At     int64  `bson:"at"`
}

type machineDoc struct {
	ID             string   `bson:"_id"`
	StackID        string   `bson:"stack_id"`
	OwnerID        string   `bson:"owner_id"`
	Provider       string   `bson:"provider"`
	Label          string   `bson:"label"`
	AlwaysOn       bool     `bson:"always_on"`
	Metadata       string   `bson:"metadata"`
	AgentTokenHash string   `bson:"agent_token_hash"` // emptyKey(id) when none
	CreatedAt      int64    `bson:"created_at"`
	UpdatedAt      int64    `bson:"updated_at"`
	Init           stateRec `bson:"init"`
	Deleted        bool     `bson:"deleted"`
}

type historyDoc struct {
	ID     string `bson:"_id"`
	M      string `bson:"m"`
	V      int64  `bson:"v"`
	O      string `bson:"o"`
	S      string `bson:"s"`
	State  int    `bson:"state"`
	Reason string `bson:"reason"`
	At     int64  `bson:"at"`
	// Since is when the machine entered this state (a change dated before
	// the previous state began does not move it back) and Base the time it
	// spent Running before: each record derives both from the one before
	// it, so uptime needs no history read.
	Since int64 `bson:"since"`
	Base  int64 `bson:"base"`
	// Head is true until the next record is appended; NextAt is then that
	// record's time when it is not earlier than this one's (MaxInt64
	// before). Both are hints that keep queries small: the reader still
	// picks the newest record itself.
	Head   bool  `bson:"head"`
	NextAt int64 `bson:"next_at"`
}

// seenDoc is a machine's agent as last heard: a narrow document of its own,
// so a heartbeat never rewrites the machine's.
type seenDoc struct {
	ID string `bson:"_id"`
	O  string `bson:"o"`
	S  string `bson:"s"`
	At int64  `bson:"at"`
	V  string `bson:"v"` // agent version
	// Act is when the machine was last in use (TouchMachineActivity).
	Act int64 `bson:"act,omitempty"`
}

func historyID(m string, v int64) string { return fmt.Sprintf("%s/%020d", m, v) }

// head is a machine's current state: its newest record.
type head struct {
	v           int64
	state       machinestate.State
	reason      string
	at          int64
	since, base int64
}

func headOf(d *machineDoc, recs []historyDoc) head {
	h := head{v: 1, state: machinestate.State(d.Init.State), reason: d.Init.Reason, at: d.Init.At, since: d.Init.At}
	for _, r := range recs {
		if r.V > h.v {
			h = head{v: r.V, state: machinestate.State(r.State), reason: r.Reason, at: r.At, since: r.Since, base: r.Base}
		}
	}
	return h
}

func (d *machineDoc) machine(h head, seen seenDoc) *stack.Machine {
	lastSeen := seen.At
	m := &stack.Machine{ID: d.ID, StackID: d.StackID, OwnerID: d.OwnerID, Provider: d.Provider, Label: d.Label,
		State: h.state, Reason: h.reason, AlwaysOn: d.AlwaysOn, AgentTokenHash: fromKey(d.AgentTokenHash),
		LastSeen: fromOpt(lastSeen), LastActivity: fromOpt(seen.Act), AgentVersion: seen.V, CreatedAt: store.FromNanos(d.CreatedAt), UpdatedAt: store.FromNanos(d.UpdatedAt),
		StateSince: store.FromNanos(h.since), UptimeBase: time.Duration(h.base)}
	if d.Metadata != "" {
		m.Metadata = json.RawMessage(d.Metadata)
	}
	return m
}

// view reads the newest record and the last-seen time of one machine.
func (s *Store) view(ctx context.Context, d *machineDoc) (*stack.Machine, error) {
	var recs []historyDoc
	var r historyDoc
	switch err := one(ctx, s.history, bson.D{{Key: "m", Value: d.ID}}, &r, "history of "+d.ID, options.FindOne().SetSort(sortBy("-v"))); {
	case err == nil:
		recs = append(recs, r)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	var seen seenDoc
	if err := one(ctx, s.seen, byID(d.ID), &seen, "machine "+d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return d.machine(headOf(d, recs), seen), nil
}

func liveByID(id string) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "deleted", Value: false}}
}

// live reads the machine with id unless it is deleted. It looks up the _id
// alone and checks the tombstone here: FerretDB 1.x scans the collection
// for any other filter.
func (s *Store) live(ctx context.Context, id string, d *machineDoc, opts ...*options.FindOneOptions) error {
	if err := one(ctx, s.machines, byID(id), d, "machine "+id, opts...); err != nil {
		return err
	}
	if d.Deleted {
		return store.NotFoundf("machine %s", id)
	}
	return nil
}

// PutMachine creates the machine, its State the first record of its
// history at CreatedAt, or replaces the stored label, metadata, always_on
// and agent token hash of an existing one (its state is left alone). On
// return m holds the stored state, reason, times and last-seen.
func (s *Store) PutMachine(ctx context.Context, m *stack.Machine) error {
	w, err := store.CheckPutMachine(m, s.now())
	if err != nil {
		return err
	}
	id, cn, nn := w.ID, w.Created, w.Updated
	hash := m.AgentTokenHash
	if hash == "" {
		hash = emptyKey(id)
	}
	fields := bson.D{{Key: "label", Value: m.Label}, {Key: "metadata", Value: string(m.Metadata)}, {Key: "always_on", Value: m.AlwaysOn},
		{Key: "agent_token_hash", Value: hash}, {Key: "updated_at", Value: nn}}
	for range maxRetries {
		res, err := s.machines.UpdateOne(ctx, liveByID(id), bson.D{{Key: "$set", Value: fields}})
		if err != nil {
			return fmt.Errorf("put machine %s: %w", id, mapErr(err))
		}
		if res.MatchedCount == 0 {
			d := machineDoc{ID: id, StackID: m.StackID, OwnerID: m.OwnerID, Provider: m.Provider, Label: m.Label, AlwaysOn: m.AlwaysOn,
				Metadata: string(m.Metadata), AgentTokenHash: hash, CreatedAt: cn, UpdatedAt: nn,
				Init: stateRec{State: int(m.State), Reason: m.Reason, At: cn}}
			_, err := s.machines.InsertOne(ctx, d)
			switch {
			case err == nil:
			case !mgo.IsDuplicateKeyError(err):
				return fmt.Errorf("put machine %s: %w", id, mapErr(err))
			default:
				var cur machineDoc
				switch err := one(ctx, s.machines, byID(id), &cur, "machine "+id); {
				case errors.Is(err, store.ErrNotFound):
					return fmt.Errorf("put machine %s: agent token hash in use: %w", id, store.ErrConflict)
				case err != nil:
					return fmt.Errorf("put machine %s: %w", id, err)
				case !cur.Deleted:
					continue // created meanwhile: replace its fields
				}
				// A deleted machine comes back: its history goes on from
				// the new state, as a new row's would in SQLite.
				revive := append(slices.Clone(fields), bson.E{Key: "deleted", Value: false})
				if _, err := s.machines.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "deleted", Value: true}}, bson.D{{Key: "$set", Value: revive}}); err != nil {
					return fmt.Errorf("put machine %s: %w", id, mapErr(err))
				}
				if err := s.setState(ctx, id, m.State, m.Reason, cn, true); err != nil {
					return fmt.Errorf("put machine %s: %w", id, err)
				}
			}
		}
		var d machineDoc
		if err := s.live(ctx, id, &d); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted meanwhile
			}
			return fmt.Errorf("put machine %s: %w", id, err)
		}
		stored, err := s.view(ctx, &d)
		if err != nil {
			return fmt.Errorf("put machine %s: %w", id, err)
		}
		m.ID = id
		m.State, m.Reason = stored.State, stored.Reason
		m.LastSeen, m.CreatedAt, m.UpdatedAt = stored.LastSeen, stored.CreatedAt, stored.UpdatedAt
		m.StateSince, m.UptimeBase = stored.StateSince, stored.UptimeBase
		return nil
	}
	return fmt.Errorf("put machine %s: too contended: %w", id, store.ErrConflict)
}

// GetMachine returns the machine with id.
func (s *Store) GetMachine(ctx context.Context, id string) (*stack.Machine, error) {
	if err := store.CheckKey("get machine", "id", id); err != nil {
		return nil, err
	}
	var d machineDoc
	if err := s.live(ctx, id, &d); err != nil {
		return nil, fmt.Errorf("get machine: %w", err)
	}
	m, err := s.view(ctx, &d)
	if err != nil {
		return nil, fmt.Errorf("get machine %s: %w", id, err)
	}
	return m, nil
}

// GetMachineByAgentTokenHash returns the machine whose agent token hashes to
// hash.
func (s *Store) GetMachineByAgentTokenHash(ctx context.Context, hash string) (*stack.Machine, error) {
	if err := store.CheckKey("get machine by agent token", "hash", hash); err != nil {
		return nil, err
	}
	if fromKey(hash) == "" {
		return nil, fmt.Errorf("get machine by agent token: %w", store.NotFoundf("machine with that agent token"))
	}
	var d machineDoc
	if err := one(ctx, s.machines, bson.D{{Key: "agent_token_hash", Value: hash}, {Key: "deleted", Value: false}}, &d, "machine with that agent token"); err != nil {
		return nil, fmt.Errorf("get machine by agent token: %w", err)
	}
	m, err := s.view(ctx, &d)
	if err != nil {
		return nil, fmt.Errorf("get machine by agent token: %w", err)
	}
	return m, nil
}

// ListMachines returns the machines the filter selects, ordered by id: the
// machine documents, their head records and last-seen times in three
// queries.
func (s *Store) ListMachines(ctx context.Context, f store.MachineFilter) ([]*stack.Machine, error) {
	mf, hf := bson.D{{Key: "deleted", Value: false}}, bson.D{{Key: "head", Value: true}}
	sf := bson.D{}
	if f.OwnerID != "" {
		mf = append(mf, bson.E{Key: "owner_id", Value: f.OwnerID})
		hf = append(hf, bson.E{Key: "o", Value: f.OwnerID})
		sf = append(sf, bson.E{Key: "o", Value: f.OwnerID})
	}
	if f.StackID != "" {
		mf = append(mf, bson.E{Key: "stack_id", Value: f.StackID})
		hf = append(hf, bson.E{Key: "s", Value: f.StackID})
		sf = append(sf, bson.E{Key: "s", Value: f.StackID})
	}
	docs, err := allOf[machineDoc](ctx, s.machines, mf, options.Find().SetSort(sortBy("_id")))
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	out := make([]*stack.Machine, 0, len(docs))
	if len(docs) == 0 {
		return out, nil
	}
	heads, err := allOf[historyDoc](ctx, s.history, hf, options.Find().SetProjection(bson.D{{Key: "m", Value: 1}, {Key: "v", Value: 1},
		{Key: "state", Value: 1}, {Key: "reason", Value: 1}, {Key: "at", Value: 1}, {Key: "since", Value: 1}, {Key: "base", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	byMachine := make(map[string][]historyDoc, len(heads))
	for _, h := range heads {
		byMachine[h.M] = append(byMachine[h.M], h)
	}
	seens, err := allOf[seenDoc](ctx, s.seen, sf)
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	seen := make(map[string]seenDoc, len(seens))
	for _, d := range seens {
		seen[d.ID] = d
	}
	for i := range docs {
		out = append(out, docs[i].machine(headOf(&docs[i], byMachine[docs[i].ID]), seen[docs[i].ID]))
	}
	return out, nil
}

// SetMachineState sets state and reason and appends the change to the
// machine's history, in one insert; the same state and reason again is a
// no-op.
func (s *Store) SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error {
	an, err := store.CheckMachineState(id, state, s.nowOr(at))
	if err != nil {
		return err
	}
	if err := s.setState(ctx, id, state, reason, an, false); err != nil {
		return fmt.Errorf("set machine %s state: %w", id, err)
	}
	return nil
}

// setState appends the next history record of machine id unless (and
// force) the newest one already says state and reason.
func (s *Store) setState(ctx context.Context, id string, state machinestate.State, reason string, an int64, force bool) error {
	for range maxRetries {
		var d machineDoc
		if err := s.live(ctx, id, &d, options.FindOne().SetProjection(bson.D{
			{Key: "owner_id", Value: 1}, {Key: "stack_id", Value: 1}, {Key: "init", Value: 1}, {Key: "deleted", Value: 1}})); err != nil {
			return err
		}
		var recs []historyDoc
		var r historyDoc
		switch err := one(ctx, s.history, bson.D{{Key: "m", Value: id}}, &r, "history of "+id, options.FindOne().SetSort(sortBy("-v"))); {
		case err == nil:
			recs = append(recs, r)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		h := headOf(&d, recs)
		if !force && h.state == state && h.reason == reason {
			return nil
		}
		// The time Running ends is added to the base; a change dated
		// before the current state began counts no time.
		base := h.base
		if h.state == machinestate.Running && an > h.since {
			base += an - h.since
		}
		rec := historyDoc{ID: historyID(id, h.v+1), M: id, V: h.v + 1, O: d.OwnerID, S: d.StackID, State: int(state), Reason: reason,
			At: an, Since: max(h.since, an), Base: base, Head: true, NextAt: math.MaxInt64}
		if _, err := s.history.InsertOne(ctx, rec); err != nil {
			if mgo.IsDuplicateKeyError(err) {
				continue // another setter appended v+1 first: look again
			}
			return mapErr(err)
		}
		if h.v >= 2 {
			set := bson.D{{Key: "head", Value: false}}
			if an >= h.at {
				set = append(set, bson.E{Key: "next_at", Value: an})
			}
			if _, err := s.history.UpdateOne(ctx, byID(historyID(id, h.v)), bson.D{{Key: "$set", Value: set}}); err != nil {
				// Only a hint: readers still pick the newest record.
				s.log.Warn("mark superseded machine history record", "machine", id, "error", err)
			}
		}
		return nil
	}
	return fmt.Errorf("machine %s: too contended: %w", id, store.ErrConflict)
}

// TouchMachine records that the machine's agent, of version, was heard
// from at at (now when zero), in its machine_seen document. LastSeen never
// moves back: the update matches only a document no newer than at, and an
// older touch changes nothing.
func (s *Store) TouchMachine(ctx context.Context, id string, at time.Time, version string) error {
	an, err := store.CheckTouch(id, s.nowOr(at))
	if err != nil {
		return err
	}
	var d machineDoc
	if err := s.live(ctx, id, &d, options.FindOne().SetProjection(bson.D{
		{Key: "owner_id", Value: 1}, {Key: "stack_id", Value: 1}, {Key: "deleted", Value: 1}})); err != nil {
		return fmt.Errorf("touch machine %s: %w", id, err)
	}
	notNewer := bson.D{{Key: "_id", Value: id}, {Key: "at", Value: bson.D{{Key: "$lte", Value: an}}}}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "at", Value: an}, {Key: "v", Value: version},
		{Key: "o", Value: d.OwnerID}, {Key: "s", Value: d.StackID}}}}
	_, err = s.seen.UpdateOne(ctx, notNewer, set, options.Update().SetUpsert(true))
	if err != nil && mgo.IsDuplicateKeyError(err) {
		// The document exists and is newer than at (nothing to do), or
		// two first touches raced to create it and the other won: apply
		// ours if it is not older.
		_, err = s.seen.UpdateOne(ctx, notNewer, set)
	}
	if err != nil {
		return fmt.Errorf("touch machine %s: %w", id, mapErr(err))
	}
	return nil
}

func (r *historyDoc) record() stack.StateRecord {
	return stack.StateRecord{MachineID: r.M, State: machinestate.State(r.State), Reason: r.Reason, At: store.FromNanos(r.At)}
}

func initRecord(d *machineDoc) historyDoc {
	return historyDoc{M: d.ID, V: 1, State: d.Init.State, Reason: d.Init.Reason, At: d.Init.At}
}

func byTime(a, b historyDoc) int {
	if c := cmp.Compare(a.At, b.At); c != 0 {
		return c
	}
	return cmp.Compare(a.V, b.V)
}

// MachineHistory returns one machine's records in time order (in the order
// they were recorded for equal times); empty when it has none.
func (s *Store) MachineHistory(ctx context.Context, id string) ([]stack.StateRecord, error) {
	if err := store.CheckKey("machine history", "id", id); err != nil {
		return nil, err
	}
	var d machineDoc
	switch err := one(ctx, s.machines, byID(id), &d, "machine "+id); {
	case errors.Is(err, store.ErrNotFound):
		return []stack.StateRecord{}, nil
	case err != nil:
		return nil, fmt.Errorf("machine %s history: %w", id, err)
	}
	recs, err := allOf[historyDoc](ctx, s.history, bson.D{{Key: "m", Value: id}})
	if err != nil {
		return nil, fmt.Errorf("machine %s history: %w", id, err)
	}
	recs = append(recs, initRecord(&d))
	slices.SortFunc(recs, byTime)
	out := make([]stack.StateRecord, len(recs))
	for i := range recs {
		out[i] = recs[i].record()
	}
	return out, nil
}

// StateHistory returns, ordered by machine id then time, for every machine
// (of the owner, when given) that is not deleted: its last record at or
// before From and every record inside (From, To). A zero From or To leaves
// that side of the window open.
//
// Three queries: the machines (with their first records), the records that
// may open the window (at or before From, not followed by a record at or
// before From: the next_at hint), and the records inside it.
func (s *Store) StateHistory(ctx context.Context, q store.HistoryQuery) ([]stack.StateRecord, error) {
	from, to, err := store.HistoryWindow(q)
	if err != nil {
		return nil, err
	}
	mf := bson.D{{Key: "deleted", Value: false}}
	var owner bson.D
	if q.OwnerID != "" {
		mf = append(mf, bson.E{Key: "owner_id", Value: q.OwnerID})
		owner = bson.D{{Key: "o", Value: q.OwnerID}}
	}
	machines, err := allOf[machineDoc](ctx, s.machines, mf, options.Find().SetSort(sortBy("_id")).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "init", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("state history: %w", err)
	}
	if len(machines) == 0 {
		return []stack.StateRecord{}, nil
	}
	proj := options.Find().SetProjection(bson.D{{Key: "m", Value: 1}, {Key: "v", Value: 1}, {Key: "state", Value: 1},
		{Key: "reason", Value: 1}, {Key: "at", Value: 1}})
	var opening []historyDoc
	if from != math.MinInt64 {
		opening, err = allOf[historyDoc](ctx, s.history, append(slices.Clone(owner),
			bson.E{Key: "next_at", Value: bson.D{{Key: "$gt", Value: from}}}, bson.E{Key: "at", Value: bson.D{{Key: "$lte", Value: from}}}), proj)
		if err != nil {
			return nil, fmt.Errorf("state history: %w", err)
		}
	}
	inside, err := allOf[historyDoc](ctx, s.history, append(slices.Clone(owner),
		bson.E{Key: "at", Value: bson.D{{Key: "$gt", Value: from}, {Key: "$lt", Value: to}}}), proj)
	if err != nil {
		return nil, fmt.Errorf("state history: %w", err)
	}
	first := make(map[string]historyDoc, len(machines))
	for i := range machines {
		if init := initRecord(&machines[i]); init.At <= from {
			first[init.M] = init
		}
	}
	for _, r := range opening {
		if cur, ok := first[r.M]; !ok || byTime(r, cur) > 0 {
			first[r.M] = r
		}
	}
	within := make(map[string][]historyDoc)
	for _, r := range inside {
		within[r.M] = append(within[r.M], r)
	}
	out := make([]stack.StateRecord, 0, len(first)+len(inside)+len(machines))
	for i := range machines {
		d := &machines[i]
		recs := within[d.ID]
		if init := initRecord(d); init.At > from && init.At < to {
			recs = append(recs, init)
		}
		slices.SortFunc(recs, byTime)
		if r, ok := first[d.ID]; ok {
			out = append(out, r.record())
		}
		for j := range recs {
			out = append(out, recs[j].record())
		}
	}
	return out, nil
}

// DeleteMachine turns a machine into a tombstone: it is gone from every
// read but its history stays.
func (s *Store) DeleteMachine(ctx context.Context, id string) error {
	if err := store.CheckKey("delete machine", "id", id); err != nil {
		return err
	}
	res, err := s.machines.UpdateOne(ctx, liveByID(id), bson.D{{Key: "$set", Value: bson.D{
		{Key: "deleted", Value: true}, {Key: "agent_token_hash", Value: emptyKey(id)},
	}}})
	if err != nil {
		return fmt.Errorf("delete machine %s: %w", id, mapErr(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("delete machine %s: %w", id, store.NotFoundf("machine %s", id))
	}
	return nil
}
