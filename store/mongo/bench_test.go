package mongo

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/ferrettest"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/storetest"
)

// BenchmarkStore runs the store benchmark suite (storetest.Bench) on the
// embedded FerretDB (a Go process translating every command to SQLite, in
// this same process), or on the MongoDB KLOUD_TEST_MONGO_URI names.
func BenchmarkStore(b *testing.B) { storetest.Bench(b, benchBackend()) }

// TestBenchFixtures checks the benchmarks' fixture loaders against the
// store's API.
func TestBenchFixtures(t *testing.T) { storetest.RunBenchFixtures(t, benchBackend()) }

// benchBackend loads the fixtures with InsertMany.
func benchBackend() storetest.BenchBackend {
	be := storetest.BenchBackend{
		Open: func(b testing.TB) store.Store {
			if uri := realMongoURI(b); uri != "" {
				return openTest(b, uri)
			}
			return openTest(b, ferrettest.Start(b).NewDatabaseURI("bench"), WithTimeout(5*time.Minute))
		},
		QueueJobs: func(b testing.TB, s store.Store, n int) {
			docs := make([]any, n)
			for i := range n {
				j := storetest.BenchQueuedJob(i)
				docs[i] = jobDoc{ID: j.ID, Kind: string(j.Kind), OwnerID: j.OwnerID, Target: j.Target, TSeq: 1,
					CreatedAt: j.CreatedAt.UnixNano(), Ord: ord(), St: string(j.Status)}
			}
			if _, err := s.(*Store).jobs.InsertMany(context.Background(), docs); err != nil {
				b.Fatal(err)
			}
		},
		LoadMachines: func(b testing.TB, s store.Store, n, days int) { loadFleet(b, s.(*Store), n, days) },
	}
	if os.Getenv(EnvMongoURI) == "" {
		// The embedded FerretDB takes minutes to load and to summarize a
		// month of 36,000 points: three days (3,600 points) instead; the
		// points metric says which ran. 1.21 million history documents
		// take it (one SQLite transaction per insert batch, every query a
		// collection scan) longer to load than a benchmark run should last.
		be.SummarizeHours = 72
		be.SkipStateHistory = "needs a real MongoDB: set " + EnvMongoURI
	}
	return be
}

// loadFleet stores storetest.BenchFleet as PutMachine and SetMachineState
// would: each machine's document with its first record, and the later
// records chained (since, base, head, next_at) as setState appends them.
func loadFleet(b testing.TB, s *Store, n, days int) {
	b.Helper()
	ctx := context.Background()
	var ms, hs []any
	flush := func(force bool) error {
		if len(ms) >= 2000 || (force && len(ms) > 0) {
			if _, err := s.machines.InsertMany(ctx, ms); err != nil {
				return err
			}
			ms = ms[:0]
		}
		if len(hs) >= 5000 || (force && len(hs) > 0) {
			if _, err := s.history.InsertMany(ctx, hs); err != nil {
				return err
			}
			hs = hs[:0]
		}
		return nil
	}
	err := storetest.BenchFleet(n, days, func(m *stack.Machine, later []stack.StateRecord) error {
		cn := m.CreatedAt.UnixNano()
		ms = append(ms, machineDoc{ID: m.ID, StackID: m.StackID, OwnerID: m.OwnerID, Provider: m.Provider, Label: m.Label,
			Metadata: string(m.Metadata), AgentTokenHash: emptyKey(m.ID), CreatedAt: cn, UpdatedAt: m.UpdatedAt.UnixNano(),
			Init: stateRec{State: int(m.State), At: cn}})
		h := head{v: 1, state: m.State, since: cn}
		var prev *historyDoc
		for _, r := range later {
			at := r.At.UnixNano()
			base := h.base
			if h.state == machinestate.Running && at > h.since {
				base += at - h.since
			}
			rec := historyDoc{ID: historyID(m.ID, h.v+1), M: m.ID, V: h.v + 1, O: m.OwnerID, S: m.StackID, State: int(r.State), At: at,
				Since: max(h.since, at), Base: base, Head: true, NextAt: 1<<63 - 1}
			if prev != nil {
				prev.Head, prev.NextAt = false, at
			}
			hs = append(hs, &rec)
			prev = &rec
			h = head{v: rec.V, state: r.State, since: rec.Since, base: base}
		}
		return flush(false)
	})
	if err == nil {
		err = flush(true)
	}
	if err != nil {
		b.Fatal(err)
	}
}
