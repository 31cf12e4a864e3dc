// Package ferrettest runs an embedded FerretDB (the SQLite handler, on a
// loopback port) inside a test process, so the MongoDB store and Kloud's
// replicas can be tested against a real MongoDB wire-protocol server
// without a MongoDB installation.
package ferrettest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// EnvLog, when set to a slog level (debug, info, warn, error), sends
// FerretDB's log to the test's stderr.
const EnvLog = "KLOUD_FERRETDB_LOG"

// Server is a running embedded FerretDB.
type Server struct {
	uri    string
	dir    string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	dbs    atomic.Int64
}

// Start runs FerretDB on 127.0.0.1 (a free port) with its SQLite files in a
// temporary directory, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ferrettest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func start(dir, addr string) (*Server, error) {
	log := slog.New(slog.DiscardHandler)
	if lv := os.Getenv(EnvLog); lv != "" {
		var level slog.Level
		if err := level.UnmarshalText([]byte(lv)); err == nil {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		}
	}
	// Immediate transactions: concurrent writers wait on busy_timeout
	// instead of failing to upgrade a read lock. synchronous=NORMAL: a
	// test server need not fsync every commit (FerretDB updates a
	// document per transaction).
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/?_txlock=immediate&_pragma=synchronous(NORMAL)",
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("start ferretdb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{dir: dir, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx)
	}()
	s.uri = f.MongoDBURI() // waits for the listener
	return s, nil
}

// URI is the server's base URI (mongodb://127.0.0.1:PORT/).
func (s *Server) URI() string { return s.uri }

// Addr is the server's host:port.
func (s *Server) Addr() string {
	u, err := url.Parse(s.uri)
	if err != nil {
		return ""
	}
	return u.Host
}

// DatabaseURI is the URI of database name on this server.
func (s *Server) DatabaseURI(name string) string {
	return strings.TrimSuffix(s.uri, "/") + "/" + name
}

// NewDatabaseURI is the URI of a database no other caller of this server's
// NewDatabaseURI got: one per test keeps tests apart.
func (s *Server) NewDatabaseURI(prefix string) string {
	return s.DatabaseURI(fmt.Sprintf("%s%d", prefix, s.dbs.Add(1)))
}

// Stop stops the server and waits for it to close every connection; it may
// be called more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cancel()
		<-s.done
	})
}

// Restart starts a stopped server again on the same address with the same
// files, as a database that was down comes back: clients that kept their
// URI reconnect to it. The test's cleanup stops the new one.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Stop()
	n, err := start(s.dir, s.Addr())
	if err != nil {
		t.Fatalf("ferrettest: restart: %v", err)
	}
	t.Cleanup(n.Stop)
	return n
}
