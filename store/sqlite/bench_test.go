package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"

	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
	"github.com/kloud/kloud/store/storetest"
)

// BenchmarkStore runs the store benchmark suite (storetest.Bench) on
// SQLite.
func BenchmarkStore(b *testing.B) { storetest.Bench(b, benchBackend()) }

// TestBenchFixtures checks the benchmarks' fixture loaders against the
// store's API.
func TestBenchFixtures(t *testing.T) { storetest.RunBenchFixtures(t, benchBackend()) }

// benchBackend loads the fixtures with prepared inserts in one
// transaction.
func benchBackend() storetest.BenchBackend {
	return storetest.BenchBackend{
		Open: func(b testing.TB) store.Store {
			box, err := secretbox.FromPassphrase("bench")
			if err != nil {
				b.Fatal(err)
			}
			return openTest(b, b.TempDir(), WithBox(box), WithLogger(slog.New(slog.DiscardHandler)))
		},
		QueueJobs: func(b testing.TB, s store.Store, n int) {
			bulk(b, s, func(ins []*sql.Stmt) error {
				for i := range n {
					j := storetest.BenchQueuedJob(i)
					if _, err := ins[0].Exec(j.ID, string(j.Kind), j.OwnerID, j.Target, string(j.Status), j.CreatedAt.UnixNano()); err != nil {
						return err
					}
				}
				return nil
			}, `INSERT INTO jobs (id, kind, owner_id, target, status, created_at) VALUES (?, ?, ?, ?, ?, ?)`)
		},
		LoadMachines: loadFleet,
	}
}

// bulk prepares the queries in one write transaction and runs fn with
// them, for fast fixture loading.
func bulk(b testing.TB, s store.Store, fn func(stmts []*sql.Stmt) error, queries ...string) {
	b.Helper()
	err := s.(*Store).write(context.Background(), func(tx *sql.Tx) error {
		stmts := make([]*sql.Stmt, len(queries))
		for i, q := range queries {
			stmt, err := tx.Prepare(q)
			if err != nil {
				return err
			}
			defer stmt.Close()
			stmts[i] = stmt
		}
		return fn(stmts)
	})
	if err != nil {
		b.Fatal(err)
	}
}

// loadFleet stores storetest.BenchFleet: each machine's row, its first
// history record, then the later ones.
func loadFleet(b testing.TB, s store.Store, n, days int) {
	b.Helper()
	bulk(b, s, func(ins []*sql.Stmt) error {
		return storetest.BenchFleet(n, days, func(m *stack.Machine, later []stack.StateRecord) error {
			if _, err := ins[0].Exec(m.ID, m.StackID, m.OwnerID, m.Provider, m.Label, int(m.State), string(m.Metadata),
				m.CreatedAt.UnixNano(), m.UpdatedAt.UnixNano(), m.StateSince.UnixNano(), int64(m.UptimeBase)); err != nil {
				return err
			}
			if _, err := ins[1].Exec(m.ID, int(m.State), m.CreatedAt.UnixNano()); err != nil {
				return err
			}
			for _, r := range later {
				if _, err := ins[1].Exec(r.MachineID, int(r.State), r.At.UnixNano()); err != nil {
					return err
				}
			}
			return nil
		})
	}, `INSERT INTO machines (id, stack_id, owner_id, provider, label, state, always_on, metadata, created_at, updated_at, state_since, uptime_base)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)`,
		`INSERT INTO machine_history (machine_id, state, reason, at) VALUES (?, ?, '', ?)`)
}
