package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
	"github.com/kloud/kloud/store/storetest"
	"github.com/kloud/kloud/user"
)

func openTest(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	s, err := Open(context.Background(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, t.TempDir()) })
}

func TestKeyCheck(t *testing.T) {
	dir := t.TempDir()
	storetest.RunKeyCheck(t, func(t *testing.T, passphrase string) (store.Store, error) {
		box, err := secretbox.FromPassphrase(passphrase)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(context.Background(), dir, WithBox(box), WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

// A database sealed before the key check existed is checked against a
// secret it holds.
func TestKeyCheckOfAnOlderDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	one, _ := secretbox.FromPassphrase("one")
	s := openTest(t, dir, WithBox(one))
	u := &user.User{Name: "u", Role: user.RoleMember, TokenHash: "h", CreatedAt: time.Now()}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	c := &stack.Credential{OwnerID: u.ID, Provider: "sandbox", Title: "c", Data: []byte(`{"k":"v"}`)}
	if err := s.CreateCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM key_check`); err != nil {
		t.Fatal(err)
	}
	two, _ := secretbox.FromPassphrase("two")
	if _, err := Open(ctx, dir, WithBox(two), WithLogger(slog.New(slog.DiscardHandler))); !errors.Is(err, secretbox.ErrKeyMismatch) {
		t.Fatalf("open with another key = %v, want ErrKeyMismatch", err)
	}
	again, err := Open(ctx, dir, WithBox(one), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("open with its key: %v", err)
	}
	again.Close()
}

func TestMigrationsAppliedOnceAndIdempotent(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := context.Background()
	dir := t.TempDir()
	migs, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 || migs[0].version != 1 {
		t.Fatalf("migrations = %v, want 0001 first", migs)
	}
	s, err := Open(ctx, dir, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, &user.User{Name: "alice", Role: user.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s := openTest(t, dir)
		var n, distinct int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != len(migs) || distinct != len(migs) {
			t.Fatalf("schema_migrations has %d rows (%d versions), want %d", n, distinct, len(migs))
		}
		users, err := s.ListUsers(ctx)
		if err != nil || len(users) != 1 {
			t.Fatalf("users after reopen = %v, %v", users, err)
		}
		var mode string
		if err := s.r.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
		}
		var fk int
		if err := s.w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEditedMigrationIsRefused(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.w.ExecContext(ctx, `UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, WithLogger(slog.New(slog.DiscardHandler))); err == nil || !strings.Contains(err.Error(), "changed after it was applied") {
		t.Fatalf("Open with an edited migration = %v, want refusal", err)
	}
}

func TestUnknownNewerMigrationIsRefused(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9999, '9999_future.sql', 'x', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, WithLogger(slog.New(slog.DiscardHandler))); err == nil || !strings.Contains(err.Error(), "does not know") {
		t.Fatalf("Open of a database from a newer Kloud = %v, want refusal", err)
	}
}

func TestKeyFileCreated0600(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	dir := filepath.Join(t.TempDir(), "data")
	openTest(t, dir)
	st, err := os.Stat(filepath.Join(dir, secretbox.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", dst.Mode().Perm())
	}
}

func TestOpenRefusesOpenKeyFile(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, secretbox.KeyFile), bytes.Repeat([]byte{7}, secretbox.KeySize), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, secretbox.KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dir); !errors.Is(err, secretbox.ErrKeyFile) {
		t.Fatalf("Open with a world-readable key = %v, want ErrKeyFile", err)
	}
}

// dbBytes reads the database file and its WAL and shared-memory files.
func dbBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(filepath.Join(dir, FileName+suffix))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestSecretsNeverInClear(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	const (
		credSecret  = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
		bootSecret  = "bootstrap-private-key-0123456789"
		agentSecret = "agent-secret-abcdefghijklmnop"
		stateSecret = "terraform-state-password-hunter2"
	)
	c := &stack.Credential{OwnerID: "usr-1", Provider: "aws", Title: "visible title",
		Data: []byte(`{"secret_key":"` + credSecret + `"}`)}
	if err := s.CreateCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	c.Bootstrap = []byte(`{"key":"` + bootSecret + `"}`)
	if err := s.UpdateCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateStack(ctx, &store.StackRecord{Stack: stack.Stack{OwnerID: "usr-1", TemplateID: "tpl-1", CredentialID: c.ID},
		AgentSecret: agentSecret}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStateVersion(ctx, &store.StateVersion{StackID: "stk-1", Serial: 1, State: []byte(`{"pw":"` + stateSecret + `"}`)}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		raw := dbBytes(t, dir)
		if !bytes.Contains(raw, []byte("visible title")) {
			t.Fatalf("%s: the probe cannot see plain columns in the files; the check would prove nothing", when)
		}
		for _, secret := range []string{credSecret, bootSecret, agentSecret, stateSecret} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s: %q found in clear in the database files", when, secret)
			}
		}
	}
	check("open (WAL)")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")

	// The values come back whole, and another key cannot read them.
	s = openTest(t, dir)
	got, err := s.GetCredential(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got.Data, []byte(credSecret)) || !bytes.Contains(got.Bootstrap, []byte(bootSecret)) {
		t.Fatalf("credential after reopen = %s / %s", got.Data, got.Bootstrap)
	}
	other, err := secretbox.FromPassphrase("another key")
	if err != nil {
		t.Fatal(err)
	}
	// The database was sealed with the first key: another one is refused
	// at open, before any secret fails to decrypt.
	if _, err := Open(ctx, dir, WithBox(other), WithLogger(slog.New(slog.DiscardHandler))); !errors.Is(err, secretbox.ErrKeyMismatch) {
		t.Fatalf("Open with the wrong key = %v, want ErrKeyMismatch", err)
	}
}

func TestTimesKeepNanosecondsAndRefuseOutOfRange(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", -7*3600))
	u := &user.User{Name: "n", Role: user.RoleMember, CreatedAt: at}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(at) || got.CreatedAt.Location() != time.UTC || got.CreatedAt.Nanosecond() != 123456789 {
		t.Fatalf("created_at = %v, want %v in UTC", got.CreatedAt, at)
	}
	for _, bad := range []time.Time{time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)} {
		err := s.CreateUser(ctx, &user.User{Name: "x" + bad.String(), Role: user.RoleMember, CreatedAt: bad})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateUser at %v = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestClockFillsZeroTimes(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := context.Background()
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	s := openTest(t, t.TempDir(), WithClock(func() time.Time { return now }))
	j := &jobs.Job{Kind: jobs.KindApply, Target: "stack/1"}
	if err := s.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if !j.CreatedAt.Equal(now) {
		t.Fatalf("created_at = %v, want the clock's %v", j.CreatedAt, now)
	}
}

// TestConcurrentStoresOneFile runs writers through several Stores (several
// connection pools) on one file, so they contend on SQLite's lock rather
// than on one pool: nothing may be lost and no write may fail with
// SQLITE_BUSY.
func TestConcurrentStoresOneFile(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := context.Background()
	dir := t.TempDir()
	first := openTest(t, dir)
	job := &jobs.Job{Kind: jobs.KindApply, Target: "stack/shared"}
	if err := first.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	const stores, writers, n = 3, 2, 20
	var wg sync.WaitGroup
	errs := make(chan error, stores*writers)
	for i := range stores {
		s := first
		if i > 0 {
			s = openTest(t, dir)
		}
		for w := range writers {
			wg.Go(func() {
				for k := range n {
					if err := s.AppendEvents(ctx, job.ID, &jobs.Event{Kind: jobs.EventOutput, Message: fmt.Sprintf("%d/%d/%d", i, w, k)}); err != nil {
						errs <- err
						return
					}
					if err := s.CreateJob(ctx, &jobs.Job{Kind: jobs.KindStart, Target: fmt.Sprintf("machine/%d-%d-%d", i, w, k)}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkCounts(t, first, job.ID, stores*writers*n)
}

func checkCounts(t *testing.T, s *Store, jobID string, n int) {
	t.Helper()
	ctx := context.Background()
	evs, err := s.ListEvents(ctx, jobID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	jobs, err := s.ListJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != n+1 {
		t.Fatalf("%d jobs, want %d", len(jobs), n+1)
	}
}

const (
	helperDirEnv = "KLOUD_SQLITE_HELPER_DIR"
	helperJobEnv = "KLOUD_SQLITE_HELPER_JOB"
	helperNEnv   = "KLOUD_SQLITE_HELPER_N"
	helperIDEnv  = "KLOUD_SQLITE_HELPER_ID"
)

// TestHelperProcess is not a test: TestTwoProcessesOneFile runs the test
// binary again with this as its only test, as a second writer process.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("only run as a helper process")
	}
	ctx := context.Background()
	n, err := strconv.Atoi(os.Getenv(helperNEnv))
	if err != nil {
		t.Fatal(err)
	}
	id, job := os.Getenv(helperIDEnv), os.Getenv(helperJobEnv)
	s := openTest(t, dir)
	for k := range n {
		if err := s.AppendEvents(ctx, job, &jobs.Event{Kind: jobs.EventOutput, Message: id + "/" + strconv.Itoa(k)}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateJob(ctx, &jobs.Job{Kind: jobs.KindStart, Target: "machine/" + id + "-" + strconv.Itoa(k)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTwoProcessesOneFile(t *testing.T) {
	t.Setenv(secretbox.EnvKey, "")
	ctx := t.Context()
	dir := t.TempDir()
	s := openTest(t, dir)
	job := &jobs.Job{Kind: jobs.KindApply, Target: "stack/shared"}
	if err := s.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	const procs, n = 2, 150
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	waited := make([]bool, procs)
	defer func() { // reap any helper a failure left running
		for i, cmd := range cmds {
			if cmd != nil && cmd.Process != nil && !waited[i] {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}
	}()
	for i := range cmds {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), helperDirEnv+"="+dir, helperJobEnv+"="+job.ID, helperNEnv+"="+strconv.Itoa(n),
			helperIDEnv+"="+fmt.Sprintf("p%d", i))
		outs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		cmds[i] = cmd
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	// This process writes too, while the helpers run.
	for k := range n {
		if err := s.AppendEvents(ctx, job.ID, &jobs.Event{Kind: jobs.EventOutput, Message: "parent/" + strconv.Itoa(k)}); err != nil {
			t.Error(err)
		}
		if err := s.CreateJob(ctx, &jobs.Job{Kind: jobs.KindStart, Target: "machine/parent-" + strconv.Itoa(k)}); err != nil {
			t.Error(err)
		}
	}
	for i, cmd := range cmds {
		err := cmd.Wait()
		waited[i] = true
		if err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
		if !bytes.Contains(outs[i].Bytes(), []byte("--- PASS: TestHelperProcess")) {
			t.Fatalf("helper %d did not run:\n%s", i, outs[i])
		}
	}
	checkCounts(t, s, job.ID, (procs+1)*n)
}
