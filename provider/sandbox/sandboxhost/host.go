// Package sandboxhost is the sandbox "cloud" Kloud runs on its own host:
// the machines under a root directory, started confined, and the control
// API (sandboxapi) the Terraform plugin reaches on a loopback listener with
// a token granted per run for one credential's directory. A machine id is
// only ever resolved inside the granted directory.
package sandboxhost

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/provider/sandbox/sandboxapi"
	"github.com/kloud/kloud/provider/sandbox/sandboxvm"
)

// Config configures a Host.
type Config struct {
	// Root holds every credential's machines: <Root>/<credential id>/
	// machines/<id>. Created 0700.
	Root string
	// AllowedRoots are further directories an admin's credential may name
	// as its data_dir (besides Root).
	AllowedRoots []string
	// Confiner runs each machine's agent confined (nil: unconfined).
	Confiner *confine.Confiner
	// Agent is the argv prefix of the machines' agent (klient);
	// sandboxvm.DefaultAgent() when empty.
	Agent []string
	// MaxGrant bounds a grant that no context ends (default 6h).
	MaxGrant time.Duration
	// Log receives the host's messages (default slog.Default()).
	Log *slog.Logger
}

// Host is the sandbox "cloud" Kloud runs: the machine manager of every
// sandbox credential and the control API the plugin reaches, on its own
// loopback listener, with a token granted per Terraform run. A machine id
// is only ever resolved inside the granted credential's directory.
type Host struct {
	cfg   Config
	agent []string
	mux   *http.ServeMux

	mu     sync.Mutex
	grants map[string]*grant // by the SHA-256 of the token
	ln     net.Listener
	srv    *http.Server
	served chan struct{}
}

type grant struct {
	ctx          context.Context
	credentialID string
	dir          string
	expires      time.Time
}

// live reports whether the grant still holds at now.
func (g *grant) live(now time.Time) bool { return now.Before(g.expires) && g.ctx.Err() == nil }

// New makes the root; Listen starts the API.
func New(cfg Config) (*Host, error) {
	if cfg.Root == "" {
		return nil, errors.New("new sandbox host: no root")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("new sandbox host: %w", err)
	}
	cfg.Root = root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("new sandbox host: %w", err)
	}
	if err := os.Chmod(root, 0o700); err != nil {
		return nil, fmt.Errorf("new sandbox host: %w", err)
	}
	for i, r := range cfg.AllowedRoots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("new sandbox host: allowed root %q is not absolute", r)
		}
		cfg.AllowedRoots[i] = filepath.Clean(r)
	}
	if cfg.Confiner == nil {
		cfg.Confiner = confine.Unconfined()
	}
	if cfg.MaxGrant <= 0 {
		cfg.MaxGrant = 6 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	h := &Host{cfg: cfg, agent: cfg.Agent, grants: map[string]*grant{}}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("POST /v1/machines", h.handleCreate)
	h.mux.HandleFunc("GET /v1/machines/{id}", h.handleGet)
	h.mux.HandleFunc("PATCH /v1/machines/{id}", h.handleUpdate)
	h.mux.HandleFunc("DELETE /v1/machines/{id}", h.handleDelete)
	return h, nil
}

// Root is the sandbox root.
func (h *Host) Root() string { return h.cfg.Root }

// AllowedRoots are the further roots a credential's directory may be in.
func (h *Host) AllowedRoots() []string { return append([]string(nil), h.cfg.AllowedRoots...) }

// Confiner is how machines run.
func (h *Host) Confiner() *confine.Confiner { return h.cfg.Confiner }

// Listen serves the control API on addr (127.0.0.1:0 for a free port)
// until Close.
func (h *Host) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sandbox host listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       time.Minute,
	}
	h.mu.Lock()
	h.ln, h.srv, h.served = ln, srv, make(chan struct{})
	served := h.served
	h.mu.Unlock()
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	return nil
}

// Endpoint is the API's base URL ("" before Listen).
func (h *Host) Endpoint() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return ""
	}
	return "http://" + h.ln.Addr().String()
}

// Reachable reports whether the control API answers on its endpoint:
// nil, or why a plugin could not reach it (not listening, closed).
func (h *Host) Reachable(ctx context.Context) error {
	h.mu.Lock()
	ln, srv := h.ln, h.srv
	h.mu.Unlock()
	if ln == nil || srv == nil {
		return errors.New("sandbox host: the control API is not listening")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("sandbox host: reach the control API: %w", err)
	}
	conn.Close()
	return nil
}

// Close stops the API; machines keep running (they outlive Kloud).
func (h *Host) Close() error {
	h.mu.Lock()
	srv, served := h.srv, h.served
	h.srv = nil
	h.grants = map[string]*grant{}
	h.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
	}
	<-served
	return nil
}

// EnsureDir makes a credential's directory (0700).
func EnsureDir(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "machines"), 0o700); err != nil {
		return fmt.Errorf("sandbox credential dir: %w", err)
	}
	return nil
}

// Grant gives a fresh token access to the machines of one credential
// (directory dir) until release is called, ctx ends or MaxGrant passes.
func (h *Host) Grant(ctx context.Context, credentialID, dir string) (token string, release func()) {
	var b [32]byte
	rand.Read(b[:])
	token = "sbt_" + hex.EncodeToString(b[:])
	key := tokenKey(token)
	h.mu.Lock()
	for k, g := range h.grants {
		if !g.live(time.Now()) {
			delete(h.grants, k)
		}
	}
	h.grants[key] = &grant{ctx: ctx, credentialID: credentialID, dir: dir, expires: time.Now().Add(h.cfg.MaxGrant)}
	h.mu.Unlock()
	revoke := func() {
		h.mu.Lock()
		delete(h.grants, key)
		h.mu.Unlock()
	}
	stop := context.AfterFunc(ctx, revoke)
	return token, func() { stop(); revoke() }
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Busy reports whether a live grant covers credential id or directory dir:
// a Terraform run may be creating machines there.
func (h *Host) Busy(credentialID, dir string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	for _, g := range h.grants {
		if g.live(now) && ((credentialID != "" && g.credentialID == credentialID) || g.dir == dir) {
			return true
		}
	}
	return false
}

// VM loads machine id of the credential directory dir, ready to run
// confined.
func (h *Host) VM(dir, id string) (*sandboxvm.VM, error) {
	vm, err := sandboxvm.Load(dir, id)
	if err != nil {
		return nil, err
	}
	vm.Confiner = h.cfg.Confiner
	return vm, nil
}

// List loads every machine of the credential directory dir.
func (h *Host) List(dir string) ([]*sandboxvm.VM, error) {
	vms, err := sandboxvm.List(dir)
	for _, vm := range vms {
		vm.Confiner = h.cfg.Confiner
	}
	return vms, err
}

// Create makes a machine in dir, hands its disk to the confined user and
// boots it; a machine that does not boot is destroyed.
func (h *Host) Create(ctx context.Context, dir string, req sandboxapi.CreateRequest) (*sandboxvm.VM, error) {
	if err := req.Valid(); err != nil {
		return nil, err
	}
	agent := h.agent
	if len(agent) == 0 {
		var err error
		if agent, err = sandboxvm.DefaultAgent(); err != nil {
			return nil, err
		}
	}
	if err := EnsureDir(dir); err != nil {
		return nil, err
	}
	vm, err := sandboxvm.Create(ctx, dir, sandboxvm.Spec{
		Name: req.Name, Size: req.Size, UserData: req.UserData, AlwaysOn: req.AlwaysOn,
		KloudURL: req.KloudURL, Token: req.AgentToken, Agent: agent, Heartbeat: req.HeartbeatDuration(), Tags: req.Tags,
	})
	if err != nil {
		return nil, err
	}
	vm.Confiner = h.cfg.Confiner
	if err := h.cfg.Confiner.HandOver(vm.Disk()); err != nil {
		vm.Destroy(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("create machine %s: %w", vm.ID(), err)
	}
	if err := vm.Start(ctx); err != nil {
		if derr := vm.Destroy(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	return vm, nil
}

// ServeHTTP serves the control API.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, sandboxapi.MaxBody)
	h.mux.ServeHTTP(w, r)
}

// authorize returns the directory the request's token was granted.
func (h *Host) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok {
		h.mu.Lock()
		g := h.grants[tokenKey(token)]
		h.mu.Unlock()
		if g != nil && g.live(time.Now()) {
			return g.dir, true
		}
	}
	writeAPIError(w, http.StatusUnauthorized, "", "missing, revoked or expired sandbox token")
	return "", false
}

// machine authorizes the request and resolves the path's id inside the
// granted directory only.
func (h *Host) machine(w http.ResponseWriter, r *http.Request) (*sandboxvm.VM, bool) {
	dir, ok := h.authorize(w, r)
	if !ok {
		return nil, false
	}
	id := r.PathValue("id")
	if err := sandboxapi.ValidID(id); err != nil {
		writeErr(w, err)
		return nil, false
	}
	vm, err := h.VM(dir, id)
	if err != nil {
		writeErr(w, err)
		return nil, false
	}
	return vm, true
}

func (h *Host) handleCreate(w http.ResponseWriter, r *http.Request) {
	dir, ok := h.authorize(w, r)
	if !ok {
		return
	}
	var req sandboxapi.CreateRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, fmt.Errorf("%w: %w", errBadBody, err))
		return
	}
	vm, err := h.Create(r.Context(), dir, req)
	if err != nil {
		writeErr(w, err)
		return
	}
	h.cfg.Log.Info("sandbox machine created", slog.String("machine", vm.ID()), slog.String("dir", dir))
	h.writeMachine(w, r, vm, http.StatusCreated)
}

func (h *Host) handleGet(w http.ResponseWriter, r *http.Request) {
	if vm, ok := h.machine(w, r); ok {
		h.writeMachine(w, r, vm, http.StatusOK)
	}
}

func (h *Host) handleUpdate(w http.ResponseWriter, r *http.Request) {
	vm, ok := h.machine(w, r)
	if !ok {
		return
	}
	var req sandboxapi.UpdateRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, fmt.Errorf("%w: %w", errBadBody, err))
		return
	}
	if err := req.Valid(); err != nil {
		writeErr(w, err)
		return
	}
	if _, err := vm.Update(r.Context(), sandboxvm.Update{Name: req.Name, Size: req.Size, AlwaysOn: req.AlwaysOn, KloudURL: req.KloudURL, Token: req.AgentToken, Tags: req.Tags}); err != nil {
		writeErr(w, err)
		return
	}
	h.writeMachine(w, r, vm, http.StatusOK)
}

func (h *Host) handleDelete(w http.ResponseWriter, r *http.Request) {
	vm, ok := h.machine(w, r)
	if !ok {
		return
	}
	if err := vm.Destroy(r.Context()); err != nil {
		writeErr(w, err)
		return
	}
	h.cfg.Log.Info("sandbox machine destroyed", slog.String("machine", vm.ID()), slog.String("dir", vm.Dir()))
	w.WriteHeader(http.StatusNoContent)
}

// View is what the API answers about vm now.
func View(ctx context.Context, vm *sandboxvm.VM) (*sandboxapi.Machine, error) {
	st, err := vm.Status(ctx)
	if err != nil {
		return nil, err
	}
	meta := vm.Meta()
	ud, err := vm.UserData()
	if err != nil {
		return nil, err
	}
	tok, err := vm.Token()
	if err != nil {
		return nil, err
	}
	m := &sandboxapi.Machine{ID: vm.ID(), Name: meta.Name, Size: meta.Size, AlwaysOn: meta.AlwaysOn, KloudURL: meta.KloudURL,
		UserData: ud, AgentToken: tok, Tags: maps.Clone(meta.Tags), State: string(st.State), Reason: st.Reason}
	if st.State == sandboxvm.Running {
		m.PID, m.Address = st.PID, st.Address
	}
	return m, nil
}

func (h *Host) writeMachine(w http.ResponseWriter, r *http.Request, vm *sandboxvm.VM, status int) {
	m, err := View(r.Context(), vm)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(m)
}

var errBadBody = errors.New("request body is not a valid JSON object of this request")

func writeErr(w http.ResponseWriter, err error) {
	var fe *sandboxapi.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeAPIError(w, http.StatusRequestEntityTooLarge, "", fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	case errors.As(err, &fe):
		writeAPIError(w, http.StatusUnprocessableEntity, fe.Field, fe.Error())
	case errors.Is(err, errBadBody):
		writeAPIError(w, http.StatusBadRequest, "", err.Error())
	case errors.Is(err, sandboxvm.ErrNotFound):
		writeAPIError(w, http.StatusNotFound, "", "no such sandbox machine among this credential's machines")
	case errors.Is(err, sandboxvm.ErrInvalid):
		writeAPIError(w, http.StatusUnprocessableEntity, "", err.Error())
	default:
		writeAPIError(w, http.StatusInternalServerError, "", err.Error())
	}
}

func writeAPIError(w http.ResponseWriter, status int, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(sandboxapi.ErrorBody{Error: msg, Field: field})
}
