package klient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kloud/kloud/klient/agentapi"

	"github.com/kloud/kloud/internal/version"
)

// Agent is one machine's agent. Create it with New, then call Run (or
// Listen followed by Serve).
type Agent struct {
	cfg     Config
	started time.Time

	mu         sync.Mutex
	ln         net.Listener
	addr       string
	userData   UserDataStatus
	exitCode   *int
	registered bool
	lastBeat   time.Time
	// interval is the heartbeat interval Kloud asked for in its last ack;
	// zero until it asks, and then the configured one applies.
	interval time.Duration
	// tunnelUp is true while the tunnel to Kloud is open.
	tunnelUp bool

	terms   *terminals     // the machine's terminal sessions
	streams sync.WaitGroup // tunnel streams being served
	cpu     cpuSampler     // the sign of work the heartbeat reports
}

// Info is what GET /v1/info answers.
type Info struct {
	MachineID        string         `json:"machine_id"`
	Size             string         `json:"size"`
	Address          string         `json:"address"`
	UptimeSeconds    float64        `json:"uptime_seconds"`
	StartedAt        time.Time      `json:"started_at"`
	PID              int            `json:"pid"`
	UserDataRan      bool           `json:"user_data_ran"`
	UserDataStatus   UserDataStatus `json:"user_data_status"`
	UserDataExitCode *int           `json:"user_data_exit_code,omitempty"`
	KloudURL         string         `json:"kloud_url,omitempty"`
	Registered       bool           `json:"registered"`
	LastHeartbeatAt  *time.Time     `json:"last_heartbeat_at,omitempty"`
	Version          string         `json:"version"`
	// HeartbeatSeconds is the heartbeat interval in use.
	HeartbeatSeconds float64 `json:"heartbeat_seconds"`
	// Tunnel is true while the tunnel to Kloud is open; Sessions counts
	// the terminal sessions attached now.
	Tunnel   bool `json:"tunnel"`
	Sessions int  `json:"sessions"`
}

// Beat is the body of the agent's register and heartbeat calls to Kloud:
// the one type the server decodes too (package agentapi).
type Beat = agentapi.Report

// The paths the agent calls on Kloud.
const (
	RegisterPath  = agentapi.RegisterPath
	HeartbeatPath = agentapi.HeartbeatPath
)

// New checks cfg and returns an agent that has not started yet.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Valid(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolve machine dir: %w", err)
	}
	cfg.Dir = abs
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open machine dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%w: dir %s is not a directory", ErrConfig, cfg.Dir)
	}
	a := &Agent{cfg: cfg, started: cfg.Now(), userData: UserDataPending}
	a.terms = newTerminals(cfg.Dir, cfg.Token, cfg.Now, cfg.Log)
	return a, nil
}

// Listen binds the agent's listener and records its address in the machine
// directory's address file (written atomically), which is how whoever
// started the agent learns its port. It returns the address.
func (a *Agent) Listen() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln != nil {
		return a.addr, nil
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
	}
	addr := ln.Addr().String()
	if err := writeFileAtomic(filepath.Join(a.cfg.Dir, AddressFile), []byte(addr+"\n"), 0o600); err != nil {
		ln.Close()
		return "", fmt.Errorf("record address: %w", err)
	}
	a.ln, a.addr = ln, addr
	return addr, nil
}

// Addr is the address the agent listens on, empty before Listen.
func (a *Agent) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// Run listens (unless Listen was called) and serves until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	if _, err := a.Listen(); err != nil {
		return err
	}
	return a.Serve(ctx)
}

// Serve serves HTTP, runs the user data (once per machine) and, when a
// Kloud URL is configured, registers and heartbeats, until ctx is done. It
// then shuts the server down, stops the user data if it still runs, removes
// the address file and, when the agent leads its own session (as a sandbox
// machine's agent does), stops every process left in that session: stopping
// the agent powers the machine off. A clean stop returns nil.
func (a *Agent) Serve(ctx context.Context) error {
	a.mu.Lock()
	ln, addr := a.ln, a.addr
	a.mu.Unlock()
	if ln == nil {
		return errors.New("serve agent: Listen was not called")
	}
	log := a.cfg.Log
	log.Info("agent listening", "machine_id", a.cfg.MachineID, "address", addr, "pid", os.Getpid())

	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
			return fmt.Errorf("shut down http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		a.runUserData(gctx)
		return nil
	})
	if a.cfg.KloudURL != "" {
		g.Go(func() error {
			a.kloudLoop(gctx)
			return nil
		})
		g.Go(func() error {
			a.tunnelLoop(gctx)
			return nil
		})
	}
	err := g.Wait()
	a.terms.closeAll(a.cfg.ShutdownTimeout)
	a.streams.Wait()
	a.removeAddress(addr)
	if n := stopSession(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout); n > 0 {
		log.Info("stopped processes left in the machine's session", "count", n)
	}
	log.Info("agent stopped", "machine_id", a.cfg.MachineID)
	return err
}

// removeAddress removes the address file if it still holds addr.
func (a *Agent) removeAddress(addr string) {
	path := filepath.Join(a.cfg.Dir, AddressFile)
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == addr {
		os.Remove(path)
	}
}

// Handler serves /healthz and /v1/info.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Info())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

// Info reports the agent's current state.
func (a *Agent) Info() Info {
	a.mu.Lock()
	defer a.mu.Unlock()
	info := Info{
		MachineID:        a.cfg.MachineID,
		Size:             a.cfg.Size,
		Address:          a.addr,
		UptimeSeconds:    a.uptime().Seconds(),
		StartedAt:        a.started.UTC(),
		PID:              os.Getpid(),
		UserDataRan:      a.userData == UserDataDone || a.userData == UserDataFailed,
		UserDataStatus:   a.userData,
		KloudURL:         a.cfg.KloudURL,
		Registered:       a.registered,
		Version:          version.Version,
		HeartbeatSeconds: a.heartbeatLocked().Seconds(),
		Tunnel:           a.tunnelUp,
	}
	_, info.Sessions = a.terms.activity()
	if a.exitCode != nil {
		code := *a.exitCode
		info.UserDataExitCode = &code
	}
	if !a.lastBeat.IsZero() {
		t := a.lastBeat.UTC()
		info.LastHeartbeatAt = &t
	}
	return info
}

// heartbeatLocked is the interval between heartbeats: Kloud's, once it
// said, else the configured one. a.mu is held.
func (a *Agent) heartbeatLocked() time.Duration {
	if a.interval > 0 {
		return a.interval
	}
	return a.cfg.HeartbeatInterval
}

func (a *Agent) uptime() time.Duration { return a.cfg.Now().Sub(a.started) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// over path, so a reader sees the old content or the new, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
