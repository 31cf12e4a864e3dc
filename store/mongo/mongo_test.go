package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"

	"github.com/kloud/kloud/internal/ferrettest"
	"github.com/kloud/kloud/kloud/jobs"
	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/secretbox"
	"github.com/kloud/kloud/store/storetest"
)

// EnvMongoURI names a real MongoDB server to run the suite against as
// well, e.g. mongodb://127.0.0.1:27017/ (each test gets its own database,
// dropped at the end).
const EnvMongoURI = "KLOUD_TEST_MONGO_URI"

func testBox(t testing.TB) *secretbox.Box {
	t.Helper()
	box, err := secretbox.FromPassphrase("mongo store tests")
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// openTest opens a store on uri and closes it when the test ends.
func openTest(t testing.TB, uri string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithBox(testBox(t)), WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	s, err := Open(context.Background(), uri, "", opts...)
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

func TestConformanceFerretDB(t *testing.T) {
	srv := ferrettest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, srv.NewDatabaseURI("t")) })
}

// realMongoURI returns the URI of a fresh database on the MongoDB server
// KLOUD_TEST_MONGO_URI names, dropped when the test ends; "" when the
// variable is not set.
func realMongoURI(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvMongoURI)
	if base == "" {
		return ""
	}
	cs, err := connstring.ParseAndValidate(base)
	if err != nil {
		tb.Fatalf("%s: %v", EnvMongoURI, err)
	}
	uri := withDatabase(base, cs.Database, fmt.Sprintf("kloudtest_%d_%d", time.Now().UnixNano(), dbSeq.Add(1)))
	tb.Cleanup(func() {
		s, err := Open(context.Background(), uri, "", WithBox(testBox(tb)), WithLogger(slog.New(slog.DiscardHandler)))
		if err == nil {
			_ = s.db.Drop(context.Background())
			_ = s.Close()
		}
	})
	return uri
}

var dbSeq atomic.Int64

// withDatabase puts name as the database of a MongoDB URI.
func withDatabase(uri, old, name string) string {
	head, query, _ := strings.Cut(uri, "?")
	if old != "" {
		head = strings.TrimSuffix(head, old)
	}
	head = strings.TrimSuffix(head, "/") + "/" + name
	if query != "" {
		head += "?" + query
	}
	return head
}

func TestConformanceMongoDB(t *testing.T) {
	if os.Getenv(EnvMongoURI) == "" {
		t.Skipf("set %s=mongodb://host:port/ to run against a real MongoDB", EnvMongoURI)
	}
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t, realMongoURI(t)) })
}

func TestOpenRefusesBadURIs(t *testing.T) {
	for _, uri := range []string{"mongodb://127.0.0.1:1", "mongodb://127.0.0.1:1/", "http://x/db", "mongodb://user:secret@host:99999999/db"} {
		_, err := Open(context.Background(), uri, "", WithBox(testBox(t)))
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", uri, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error shows the password: %v", uri, err)
		}
	}
}

func TestKeyCheck(t *testing.T) {
	uri := ferrettest.Start(t).NewDatabaseURI("keys")
	storetest.RunKeyCheck(t, func(t *testing.T, passphrase string) (store.Store, error) {
		box, err := secretbox.FromPassphrase(passphrase)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(context.Background(), uri, "", WithBox(box), WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

func TestSchemaVersionRecordedAndChecked(t *testing.T) {
	srv := ferrettest.Start(t)
	uri := srv.NewDatabaseURI("schema")
	s := openTest(t, uri)
	ctx := context.Background()
	var doc schemaDoc
	if err := s.schema.FindOne(ctx, byID("schema")).Decode(&doc); err != nil || doc.Version != SchemaVersion {
		t.Fatalf("schema doc = %+v, %v; want version %d", doc, err, SchemaVersion)
	}
	openTest(t, uri) // a second open (another replica) finds it as it is
	if _, err := s.schema.UpdateOne(ctx, byID("schema"), map[string]any{"$set": map[string]any{"version": SchemaVersion + 1}}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, uri, "", WithBox(testBox(t)), WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a database a newer release migrated = %v, want refusal", err)
	}
}

func TestSecretsSealedAtRest(t *testing.T) {
	srv := ferrettest.Start(t)
	s := openTest(t, srv.NewDatabaseURI("sealed"))
	ctx := context.Background()
	c := &stack.Credential{OwnerID: "usr-1", Provider: "aws", Data: []byte(`{"secret_key":"wJalrXUtnFEMI-plain"}`), Bootstrap: []byte(`{"key":"boot-plain"}`)}
	if err := s.CreateCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	st := &store.StackRecord{Stack: stack.Stack{OwnerID: "usr-1", TemplateID: "tpl-1", CredentialID: c.ID}, AgentSecret: "agent-plain"}
	if err := s.CreateStack(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStateVersion(ctx, &store.StateVersion{StackID: st.ID, Serial: 1, State: []byte(`{"password":"state-plain"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{"credentials", "stacks", "state_versions"} {
		cur, err := s.db.Collection(coll).Find(ctx, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []map[string]any
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		raw := fmt.Sprint(docs)
		for _, plain := range []string{"wJalrXUtnFEMI-plain", "boot-plain", "agent-plain", "state-plain"} {
			if strings.Contains(raw, plain) {
				t.Errorf("%s holds %q in the clear", coll, plain)
			}
		}
	}
	got, err := s.GetCredential(ctx, c.ID)
	if err != nil || string(got.Data) != string(c.Data) {
		t.Fatalf("credential round trip = %s, %v", got.Data, err)
	}
}

// TestServerLostMidCall stops FerretDB while calls are in flight and after:
// every call returns (nil or an error), none panics or hangs, and the
// errors after the stop wrap ErrUnavailable.
func TestServerLostMidCall(t *testing.T) {
	srv := ferrettest.Start(t)
	s := openTest(t, srv.NewDatabaseURI("lost"), WithTimeout(500*time.Millisecond))
	ctx := context.Background()
	j := &jobs.Job{Kind: jobs.KindApply, Target: "stack/1"}
	if err := s.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMachine(ctx, &stack.Machine{ID: "m-1", StackID: "stk-1", OwnerID: "usr-1", State: machinestate.Running}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	panics := make(chan any, 8)
	for w := range 4 {
		wg.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					panics <- r
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = s.AppendEvents(ctx, j.ID, &jobs.Event{Kind: jobs.EventOutput, Message: fmt.Sprint(w, i)})
				_, _ = s.ListMachines(ctx, store.MachineFilter{})
				_ = s.SetMachineState(ctx, "m-1", machinestate.State(1+i%5), "", time.Time{})
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // let calls be in flight when the server goes
	srv.Stop()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(panics)
	for p := range panics {
		t.Errorf("a call panicked when the server went away: %v", p)
	}
	calls := map[string]func() error{
		"GetJob":          func() error { _, err := s.GetJob(ctx, j.ID); return err },
		"CreateJob":       func() error { return s.CreateJob(ctx, &jobs.Job{Kind: jobs.KindApply, Target: "stack/2"}) },
		"ClaimJob":        func() error { _, err := s.ClaimJob(ctx, "w", time.Now(), time.Minute, 0); return err },
		"AppendEvents":    func() error { return s.AppendEvents(ctx, j.ID, &jobs.Event{Kind: jobs.EventPhase}) },
		"ListMachines":    func() error { _, err := s.ListMachines(ctx, store.MachineFilter{}); return err },
		"SetMachineState": func() error { return s.SetMachineState(ctx, "m-1", machinestate.Stopped, "x", time.Time{}) },
		"AcquireLease":    func() error { _, err := s.AcquireLease(ctx, "l", "h", time.Now(), time.Minute); return err },
		"Summarize":       func() error { _, err := s.Summarize(ctx, store.SummaryQuery{}); return err },
		"CommitRatedPeriod": func() error {
			return s.CommitRatedPeriod(ctx, &store.RatedPeriod{Scope: "u", Begin: time.Unix(0, 0), End: time.Unix(3600, 0)})
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with the server gone = %v, want ErrUnavailable", name, err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%s took %v to fail", name, d)
		}
	}
}

// Replicas opening a fresh database at once with different keys agree on
// one key: exactly one of them starts.
func TestKeyCheckConcurrentFirstOpens(t *testing.T) {
	uri := ferrettest.Start(t).NewDatabaseURI("race")
	keys := []string{"replica-a", "replica-b"}
	errs := make(chan error, len(keys))
	for _, k := range keys {
		go func() {
			box, err := secretbox.FromPassphrase(k)
			if err != nil {
				errs <- err
				return
			}
			s, err := Open(context.Background(), uri, "", WithBox(box), WithLogger(slog.New(slog.DiscardHandler)))
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	var ok, refused int
	for range keys {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, secretbox.ErrKeyMismatch):
			refused++
		default:
			t.Errorf("open: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Fatalf("%d opens started and %d were refused; want 1 and 1", ok, refused)
	}
}
