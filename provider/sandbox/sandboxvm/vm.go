// Package sandboxvm is a sandbox machine on this host: a directory under
// <dataDir>/machines/<id> holds Kloud's record of it (machine.json, the
// agent token, the agent's log), and its disk/ subdirectory is the
// machine's own disk, the only place its agent and user data see; a
// detached agent process (klient) is its CPU. Kloud's sandbox host creates,
// starts, stops and destroys machines with it. With a Confiner the agent
// runs confined (its own namespaces, an unprivileged user, only disk/
// visible); Kloud never follows a link or opens a special file the machine
// put on its disk.
package sandboxvm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/klient"
)

// File names inside a machine directory; the agent's are klient's.
const (
	MetaFile         = "machine.json"
	AgentLogFile     = "agent.log"
	TokenFile        = klient.TokenFile
	UserDataFile     = klient.UserDataFile
	UserDataLogFile  = klient.UserDataLogFile
	UserDataDoneFile = klient.UserDataDoneFile
	AddressFile      = klient.AddressFile // written by the agent once it listens
	// DiskDir is the machine's own directory under its machine directory:
	// the agent's -dir, the only place a confined machine sees.
	DiskDir  = "disk"
	lockFile = ".lock"
)

// Defaults for the VM timing fields.
const (
	DefaultStartTimeout  = 15 * time.Second
	DefaultStopGrace     = 10 * time.Second
	DefaultHealthTimeout = 2 * time.Second
)

// EnvKlient names the agent binary Kloud and the plugin use when set.
const EnvKlient = "KLOUD_KLIENT"

// Sentinel errors callers branch on.
var (
	ErrNotFound     = errors.New("sandbox machine not found")
	ErrExists       = errors.New("sandbox machine already exists")
	ErrInvalid      = errors.New("invalid sandbox machine")
	ErrNoAgent      = errors.New("no agent binary found")
	ErrAgentExited  = errors.New("agent exited during start")
	ErrStartTimeout = errors.New("agent did not become healthy in time")
	ErrNotRunning   = errors.New("sandbox machine is not running")
)

// State is a sandbox machine's power state.
type State string

// The states Status reports.
const (
	Running State = "running"
	Stopped State = "stopped"
)

// Sizes are the machine sizes a sandbox machine may have, smallest first.
var sizes = []string{"small", "medium", "large"}

// Sizes returns the valid sizes, smallest first.
func Sizes() []string { return slices.Clone(sizes) }

// DefaultSize is the size of a machine whose spec names none.
const DefaultSize = "small"

// ValidSize reports whether size is one of Sizes.
func ValidSize(size string) error {
	if !slices.Contains(sizes, size) {
		return fmt.Errorf("%w: size %q: want one of %s", ErrInvalid, size, strings.Join(sizes, ", "))
	}
	return nil
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidID reports whether id can name a machine directory: lower-case
// letters, digits, '-' and '_', at most 63, so no id escapes the data dir.
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: id %q: want 1-63 of a-z, 0-9, '-', '_', starting with a letter or digit", ErrInvalid, id)
	}
	return nil
}

// NewID returns a fresh machine id: "sbx-" and 16 random hex digits.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return "sbx-" + hex.EncodeToString(b[:])
}

// Spec describes a machine to create.
type Spec struct {
	// ID is the machine's id; NewID() when empty.
	ID string
	// Name is the machine's display name.
	Name string
	// Size is one of Sizes; DefaultSize when empty.
	Size string
	// UserData is a shell script the agent runs once, at first boot.
	UserData string
	// AlwaysOn exempts the machine from Kloud's idle stop.
	AlwaysOn bool
	// KloudURL is where the agent registers and heartbeats; empty for none.
	KloudURL string
	// Token is the agent's token for Kloud. It is kept in the machine's own
	// agent.token (mode 0600) and passed to the agent in its environment,
	// never on its command line, in machine.json, or in an error.
	Token string
	// Agent is the argv prefix that runs the agent (the program and any
	// subcommand); DefaultAgent() when empty. It is recorded so a later
	// Start, from any process, spawns the agent the same way.
	Agent []string
	// Heartbeat is the agent's heartbeat interval; klient's default (10 s)
	// when zero.
	Heartbeat time.Duration
	// Tags label the machine; the agent does not read them.
	Tags map[string]string
}

// Meta is machine.json: what the machine is and which agent process, if
// any, runs it.
type Meta struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Size      string    `json:"size"`
	AlwaysOn  bool      `json:"always_on"`
	KloudURL  string    `json:"kloud_url,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Agent is the argv prefix of the agent; Start appends the machine's
	// flags (-dir, -machine-id, -size, -kloud-url).
	Agent []string `json:"agent"`
	// Heartbeat is the agent's heartbeat interval, if not klient's default.
	Heartbeat Duration `json:"heartbeat,omitempty"`
	// Tags label the machine.
	Tags map[string]string `json:"tags,omitempty"`
	// PID and ProcStart identify the agent process last started (ProcStart
	// is its start time in /proc, so a reused pid is never mistaken for the
	// agent); both are zero when the machine was stopped.
	PID       int        `json:"pid,omitempty"`
	ProcStart uint64     `json:"proc_start,omitempty"`
	Address   string     `json:"address,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
}

// Status is a machine's observed state.
type Status struct {
	State State `json:"state"`
	// PID and Address are the agent's while it runs.
	PID     int    `json:"pid,omitempty"`
	Address string `json:"address,omitempty"`
	// Alive is true when the agent process exists (it may still be
	// unhealthy: State is Running only when /healthz answers too).
	Alive bool `json:"alive"`
	// Reason says why a machine is not running.
	Reason string `json:"reason,omitempty"`
}

// VM is one sandbox machine. Every method re-reads machine.json, so a VM
// loaded in one process sees what another process did; methods that change
// the machine hold an exclusive lock on its directory. A VM value is safe
// for concurrent use.
type VM struct {
	dataDir string
	dir     string
	id      string

	// StartTimeout bounds Start when its context has no deadline.
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
	StopGrace time.Duration
	// HealthTimeout bounds one /healthz probe.
	HealthTimeout time.Duration

	// Confiner, when set and enabled, runs the agent confined to the
	// machine's disk directory; nil runs it as the caller's user.
	Confiner *confine.Confiner

	mu   sync.Mutex
	meta Meta
}

// MachineDir is the directory of machine id under dataDir.
func MachineDir(dataDir, id string) string {
	return filepath.Join(dataDir, "machines", id)
}

func newVM(dataDir, id string) *VM {
	return &VM{
		dataDir:       dataDir,
		dir:           MachineDir(dataDir, id),
		id:            id,
		StartTimeout:  DefaultStartTimeout,
		StopGrace:     DefaultStopGrace,
		HealthTimeout: DefaultHealthTimeout,
	}
}

// ID is the machine's id.
func (vm *VM) ID() string { return vm.id }

// Dir is the machine's directory.
func (vm *VM) Dir() string { return vm.dir }

// Disk is the machine's own directory (Dir()/disk): the agent's -dir, where
// the user data runs.
func (vm *VM) Disk() string { return filepath.Join(vm.dir, DiskDir) }

// Meta returns machine.json as last read or written.
func (vm *VM) Meta() Meta {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	m := vm.meta
	m.Agent = slices.Clone(m.Agent)
	return m
}

// Create makes the machine's directory with its machine.json, token and
// user data. It does not start the agent.
func Create(ctx context.Context, dataDir string, spec Spec) (*VM, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create machine: %w", err)
	}
	if dataDir == "" {
		return nil, fmt.Errorf("create machine: %w: data dir is empty", ErrInvalid)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("create machine: resolve data dir: %w", err)
	}
	dataDir = abs
	if spec.ID == "" {
		spec.ID = NewID()
	}
	if spec.Size == "" {
		spec.Size = DefaultSize
	}
	if err := validSpec(spec); err != nil {
		return nil, fmt.Errorf("create machine: %w", err)
	}
	agent := slices.Clone(spec.Agent)
	if len(agent) == 0 {
		if agent, err = DefaultAgent(); err != nil {
			return nil, fmt.Errorf("create machine %s: %w", spec.ID, err)
		}
	} else if agent[0], err = resolveProgram(agent[0]); err != nil {
		return nil, fmt.Errorf("create machine %s: agent: %w", spec.ID, err)
	}

	if err := os.MkdirAll(filepath.Join(dataDir, "machines"), 0o700); err != nil {
		return nil, fmt.Errorf("create machine %s: %w", spec.ID, err)
	}
	vm := newVM(dataDir, spec.ID)
	if err := os.Mkdir(vm.dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create machine %s: %w", spec.ID, ErrExists)
		}
		return nil, fmt.Errorf("create machine %s: %w", spec.ID, err)
	}
	if err := os.Mkdir(vm.Disk(), 0o700); err != nil {
		os.RemoveAll(vm.dir)
		return nil, fmt.Errorf("create machine %s: %w", spec.ID, err)
	}
	meta := Meta{
		ID:        spec.ID,
		Name:      spec.Name,
		Size:      spec.Size,
		AlwaysOn:  spec.AlwaysOn,
		KloudURL:  spec.KloudURL,
		CreatedAt: time.Now().UTC().Truncate(time.Second),
		Agent:     agent,
		Heartbeat: Duration(spec.Heartbeat),
		Tags:      maps.Clone(spec.Tags),
	}
	err = func() error {
		if spec.UserData != "" {
			// Kloud's copy beside machine.json, the agent's on its disk.
			for _, d := range []string{vm.dir, vm.Disk()} {
				if err := writeFileAtomic(filepath.Join(d, UserDataFile), []byte(spec.UserData), 0o600); err != nil {
					return err
				}
			}
		}
		if err := vm.writeToken(spec.Token); err != nil {
			return err
		}
		return vm.save(meta)
	}()
	if err != nil {
		os.RemoveAll(vm.dir)
		return nil, fmt.Errorf("create machine %s: %w", spec.ID, err)
	}
	return vm, nil
}

func validSpec(s Spec) error {
	if err := ValidID(s.ID); err != nil {
		return err
	}
	if err := ValidSize(s.Size); err != nil {
		return err
	}
	if s.Heartbeat < 0 {
		return fmt.Errorf("%w: heartbeat %s is negative", ErrInvalid, s.Heartbeat)
	}
	if len(s.Name) > 255 || strings.ContainsAny(s.Name, "\x00\n") {
		return fmt.Errorf("%w: name %q: want at most 255 characters on one line", ErrInvalid, s.Name)
	}
	return validKloudURL(s.KloudURL)
}

func validKloudURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: kloud_url %q: want http(s)://host[:port]", ErrInvalid, s)
	}
	return nil
}

// Load opens machine id under dataDir.
func Load(dataDir, id string) (*VM, error) {
	if err := ValidID(id); err != nil {
		return nil, fmt.Errorf("load machine: %w", err)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("load machine %s: resolve data dir: %w", id, err)
	}
	vm := newVM(abs, id)
	if _, err := vm.reload(); err != nil {
		return nil, err
	}
	return vm, nil
}

// List loads every machine under dataDir, sorted by id. A data dir without
// machines yields none.
func List(dataDir string) ([]*VM, error) {
	entries, err := os.ReadDir(filepath.Join(dataDir, "machines"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list machines: %w", err)
	}
	var out []*VM
	for _, e := range entries {
		if !e.IsDir() || ValidID(e.Name()) != nil {
			continue
		}
		vm, err := Load(dataDir, e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // being created or destroyed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, vm)
	}
	return out, nil
}

// DefaultAgent finds the agent program: $KLOUD_KLIENT if set (it must be
// executable), else "klient" beside the running executable, else "klient"
// on PATH.
func DefaultAgent() ([]string, error) {
	if p := os.Getenv(EnvKlient); p != "" {
		abs, err := resolveProgram(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKlient, err)
		}
		return []string{abs}, nil
	}
	if exe, err := os.Executable(); err == nil {
		if p, err := resolveProgram(filepath.Join(filepath.Dir(exe), "klient")); err == nil {
			return []string{p}, nil
		}
	}
	if p, err := exec.LookPath("klient"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return []string{abs}, nil
		}
	}
	return nil, fmt.Errorf("%w: set %s, or put klient beside the executable or on PATH", ErrNoAgent, EnvKlient)
}

// resolveProgram returns the absolute path of an executable file, looking
// a bare name up on PATH.
func resolveProgram(p string) (string, error) {
	if !strings.Contains(p, "/") {
		lp, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrNoAgent, err)
		}
		p = lp
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoAgent, err)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%w: %s is not an executable file", ErrNoAgent, abs)
	}
	return abs, nil
}

// Update is a change to a machine; nil fields stay as they are.
type Update struct {
	Name     *string
	Size     *string
	AlwaysOn *bool
	KloudURL *string
	Token    *string
	// Tags, when set, replace the machine's tags (in place).
	Tags *map[string]string
}

// Update applies u. The agent reads size, Kloud URL and token when it
// boots, so changing any of them restarts a running agent (a resize is a
// reboot, as on a cloud); name and always_on change in place. It reports
// whether the agent was restarted.
func (vm *VM) Update(ctx context.Context, u Update) (restarted bool, err error) {
	if u.Size != nil {
		if err := ValidSize(*u.Size); err != nil {
			return false, fmt.Errorf("update machine %s: %w", vm.id, err)
		}
	}
	if u.KloudURL != nil {
		if err := validKloudURL(*u.KloudURL); err != nil {
			return false, fmt.Errorf("update machine %s: %w", vm.id, err)
		}
	}
	unlock, err := vm.lock(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	meta, err := vm.reload()
	if err != nil {
		return false, err
	}
	boot := false
	if u.Name != nil {
		meta.Name = *u.Name
	}
	if u.AlwaysOn != nil {
		meta.AlwaysOn = *u.AlwaysOn
	}
	if u.Tags != nil {
		meta.Tags = maps.Clone(*u.Tags)
	}
	if u.Size != nil && *u.Size != meta.Size {
		meta.Size, boot = *u.Size, true
	}
	if u.KloudURL != nil && *u.KloudURL != meta.KloudURL {
		meta.KloudURL, boot = *u.KloudURL, true
	}
	if u.Token != nil {
		old, _ := vm.readToken()
		if old != *u.Token {
			if err := vm.writeToken(*u.Token); err != nil {
				return false, fmt.Errorf("update machine %s: %w", vm.id, err)
			}
			boot = true
		}
	}
	if err := vm.save(meta); err != nil {
		return false, fmt.Errorf("update machine %s: %w", vm.id, err)
	}
	if !boot {
		return false, nil
	}
	st := vm.status(ctx, meta)
	if !st.Alive {
		return false, nil
	}
	if err := vm.stopLocked(ctx); err != nil {
		return false, err
	}
	if err := vm.startLocked(ctx); err != nil {
		return true, err
	}
	return true, nil
}

// Status reports whether the machine runs: its agent process exists, is
// not a zombie, is the process machine.json names, and answers /healthz.
func (vm *VM) Status(ctx context.Context) (Status, error) {
	meta, err := vm.reload()
	if err != nil {
		return Status{}, err
	}
	return vm.status(ctx, meta), nil
}

func (vm *VM) status(ctx context.Context, meta Meta) Status {
	if meta.PID == 0 {
		return Status{State: Stopped, Reason: "agent not started"}
	}
	if !alive(meta.PID, meta.ProcStart) {
		return Status{State: Stopped, Reason: fmt.Sprintf("agent process %d is gone", meta.PID)}
	}
	addr := meta.Address
	if a := vm.readAddress(); a != "" {
		addr = a
	}
	if addr == "" {
		return Status{State: Stopped, PID: meta.PID, Alive: true, Reason: "agent has not recorded its address"}
	}
	if err := vm.probe(ctx, addr); err != nil {
		return Status{State: Stopped, PID: meta.PID, Address: addr, Alive: true, Reason: "agent not healthy: " + err.Error()}
	}
	return Status{State: Running, PID: meta.PID, Address: addr, Alive: true}
}

// probe asks the agent's /healthz.
func (vm *VM) probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, vm.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("probe agent: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe agent: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe agent: /healthz answered %d", resp.StatusCode)
	}
	return nil
}

// Start boots the machine: it spawns the agent detached from the caller
// (its own session, stdin /dev/null, output to agent.log, released so it
// outlives the caller) and waits until the agent has written its address
// and answers /healthz. Starting a running machine does nothing; an agent
// process that lives but does not answer is killed and replaced.
func (vm *VM) Start(ctx context.Context) error {
	unlock, err := vm.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return vm.startLocked(ctx)
}

func (vm *VM) startLocked(ctx context.Context) error {
	meta, err := vm.reload()
	if err != nil {
		return err
	}
	st := vm.status(ctx, meta)
	if st.State == Running {
		if meta.Address != st.Address {
			meta.Address = st.Address
			return vm.save(meta)
		}
		return nil
	}
	if st.Alive {
		if err := vm.stopLocked(ctx); err != nil {
			return err
		}
		if meta, err = vm.reload(); err != nil {
			return err
		}
	}
	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, vm.StartTimeout)
		defer cancel()
	}

	if len(meta.Agent) == 0 {
		return fmt.Errorf("start machine %s: %w: machine.json names no agent", vm.id, ErrInvalid)
	}
	if err := os.Remove(filepath.Join(vm.Disk(), AddressFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("start machine %s: remove stale address: %w", vm.id, err)
	}
	token, err := vm.readToken()
	if err != nil {
		return fmt.Errorf("start machine %s: %w", vm.id, err)
	}
	disk := vm.Disk()
	args := append(slices.Clone(meta.Agent[1:]), "-dir", disk, "-machine-id", meta.ID, "-size", meta.Size)
	if meta.KloudURL != "" {
		args = append(args, "-kloud-url", meta.KloudURL)
	}
	if meta.Heartbeat > 0 {
		args = append(args, "-heartbeat", time.Duration(meta.Heartbeat).String())
	}
	logf, err := os.OpenFile(filepath.Join(vm.dir, AgentLogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("start machine %s: open agent log: %w", vm.id, err)
	}
	defer logf.Close()
	pid, err := vm.spawn(ctx, append([]string{meta.Agent[0]}, args...), agentEnv(os.Environ(), token, vm.confined(), disk), logf)
	if err != nil {
		return fmt.Errorf("start machine %s: spawn agent: %w%s", vm.id, err, vm.logTail())
	}
	pst, _ := readStat(pid)

	now := time.Now().UTC()
	meta.PID, meta.ProcStart, meta.Address = pid, pst.startTime, ""
	meta.StartedAt, meta.StoppedAt = &now, nil
	if err := vm.save(meta); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		reap(pid)
		return fmt.Errorf("start machine %s: %w", vm.id, err)
	}

	addr, err := vm.waitHealthy(ctx, pid, pst.startTime)
	if err != nil {
		if alive(pid, pst.startTime) {
			vm.stopLocked(context.WithoutCancel(ctx))
		} else {
			vm.clearProcess()
		}
		return fmt.Errorf("start machine %s: %w%s", vm.id, err, vm.logTail())
	}
	meta.Address = addr
	if err := vm.save(meta); err != nil {
		return fmt.Errorf("start machine %s: %w", vm.id, err)
	}
	return nil
}

// waitHealthy polls until the agent has written its address and answers
// /healthz, the agent exits, or ctx ends.
func (vm *VM) waitHealthy(ctx context.Context, pid int, start uint64) (string, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if !alive(pid, start) {
			return "", ErrAgentExited
		}
		if addr := vm.readAddress(); addr != "" {
			if lastErr = vm.probe(ctx, addr); lastErr == nil {
				return addr, nil
			}
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return "", fmt.Errorf("%w: %w (last: %v)", ErrStartTimeout, ctx.Err(), lastErr)
			}
			return "", fmt.Errorf("%w: %w", ErrStartTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// confined reports whether the agent runs confined.
func (vm *VM) confined() bool { return vm.Confiner != nil && vm.Confiner.Enabled() }

// spawn starts the agent detached from the caller and returns its pid.
// Unconfined, it runs in its own session, released so it outlives the
// caller; it is reaped by whoever sees it exit first (Status, Stop), or by
// init once this process ends. Confined, bwrap starts it as the first
// process of its own PID namespace in a new session, and tells its host pid
// on an info pipe; bwrap itself is started through `setsid -f`, so init,
// not Kloud, reaps it and nothing of Kloud waits for the machine.
func (vm *VM) spawn(ctx context.Context, argv, env []string, logf *os.File) (int, error) {
	if !vm.confined() {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = vm.Disk()
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		cmd.Stdout, cmd.Stderr = logf, logf // stdin nil: /dev/null
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		pid := cmd.Process.Pid
		cmd.Process.Release()
		return pid, nil
	}
	full := vm.Confiner.Command(confine.Spec{
		Dir:      vm.Disk(),
		Binds:    []confine.Bind{{Src: argv[0], ReadOnly: true}},
		InfoFD:   3,
		Hostname: vm.id,
	}, argv)
	if setsid, err := exec.LookPath("setsid"); err == nil {
		full = append([]string{setsid, "-f"}, full...)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("info pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = vm.dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, err
	}
	// setsid -f returns at once; without setsid this waits for the machine.
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(vm.StartTimeout)
	}
	r.SetReadDeadline(deadline)
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	if err := json.NewDecoder(bufio.NewReader(r)).Decode(&info); err != nil || info.ChildPID <= 0 {
		return 0, fmt.Errorf("%w: bwrap told no agent pid (%v)", ErrAgentExited, err)
	}
	select {
	case <-waited:
	case <-time.After(vm.StartTimeout):
	}
	return info.ChildPID, nil
}

// agentEnv is the environment a machine boots with: only the caller's
// PATH, HOME, user, shell, locale, time zone and TMPDIR, plus the token. A
// machine never sees its starter's environment. A confined machine's HOME
// is its disk and its TMPDIR its own /tmp.
func agentEnv(env []string, token string, confined bool, disk string) []string {
	out := make([]string, 0, 12)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if confined && (k == "HOME" || k == "TMPDIR" || k == "USER" || k == "LOGNAME") {
			continue
		}
		switch {
		case k == "PATH", k == "HOME", k == "USER", k == "LOGNAME", k == "SHELL",
			k == "LANG", k == "TZ", k == "TMPDIR", strings.HasPrefix(k, "LC_"):
			out = append(out, kv)
		}
	}
	if confined {
		out = append(out, "HOME="+disk)
	}
	if token != "" {
		out = append(out, "KLIENT_TOKEN="+token)
	}
	return out
}

// logTail is the end of agent.log, for an error message.
func (vm *VM) logTail() string {
	b, err := os.ReadFile(filepath.Join(vm.dir, AgentLogFile))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	const max = 2048
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "; agent.log ends:\n" + string(bytes.TrimSpace(b))
}

// Stop powers the machine off: SIGTERM to the agent (which stops the
// processes of its machine), then, after StopGrace or when ctx ends,
// SIGKILL to the agent and everything left in its session. Stopping a
// stopped machine does nothing.
func (vm *VM) Stop(ctx context.Context) error {
	unlock, err := vm.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return vm.stopLocked(ctx)
}

func (vm *VM) stopLocked(ctx context.Context) error {
	meta, err := vm.reload()
	if err != nil {
		return err
	}
	pid, start := meta.PID, meta.ProcStart
	if pid != 0 && alive(pid, start) {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop machine %s: signal agent %d: %w", vm.id, pid, err)
		}
		grace := time.NewTimer(vm.StopGrace)
		defer grace.Stop()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	wait:
		for alive(pid, start) {
			select {
			case <-ctx.Done():
				break wait
			case <-grace.C:
				break wait
			case <-tick.C:
			}
		}
		if alive(pid, start) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		// Whatever the agent could not stop (or had no time to) goes now.
		killSession(pid, time.Now().Add(5*time.Second))
		if alive(pid, start) {
			return fmt.Errorf("stop machine %s: agent %d survived SIGKILL", vm.id, pid)
		}
	}
	return vm.clearProcess()
}

// clearProcess records that no agent runs.
func (vm *VM) clearProcess() error {
	meta, err := vm.reload()
	if err != nil {
		return err
	}
	os.Remove(filepath.Join(vm.Disk(), AddressFile))
	if meta.PID == 0 && meta.Address == "" {
		return nil
	}
	now := time.Now().UTC()
	meta.PID, meta.ProcStart, meta.Address = 0, 0, ""
	meta.StoppedAt = &now
	if err := vm.save(meta); err != nil {
		return fmt.Errorf("stop machine %s: %w", vm.id, err)
	}
	return nil
}

// Destroy stops the machine and removes its directory. Destroying a
// machine that is gone does nothing.
func (vm *VM) Destroy(ctx context.Context) error {
	unlock, err := vm.lock(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	if err := vm.stopLocked(ctx); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("destroy machine %s: %w", vm.id, err)
	}
	// An agent machine.json does not name (its starter died before
	// recording it) still runs in the machine's directory.
	killInDir(vm.dir, time.Now().Add(5*time.Second))
	if err := os.RemoveAll(vm.dir); err != nil {
		return fmt.Errorf("destroy machine %s: %w", vm.id, err)
	}
	return nil
}

// lock takes the machine directory's exclusive lock, polling until ctx
// ends. Locks are per open file, so two VMs in one process exclude each
// other as two processes do.
func (vm *VM) lock(ctx context.Context) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(vm.dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lock machine %s: %w", vm.id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lock machine %s: %w", vm.id, err)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock machine %s: %w", vm.id, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock machine %s: %w", vm.id, ctx.Err())
		case <-tick.C:
		}
	}
	// A machine destroyed while we waited is gone.
	if _, err := os.Stat(filepath.Join(vm.dir, MetaFile)); errors.Is(err, os.ErrNotExist) {
		f.Close()
		return nil, fmt.Errorf("lock machine %s: %w", vm.id, ErrNotFound)
	}
	return func() { f.Close() }, nil
}

// reload reads machine.json.
func (vm *VM) reload() (Meta, error) {
	b, err := os.ReadFile(filepath.Join(vm.dir, MetaFile))
	if errors.Is(err, os.ErrNotExist) {
		return Meta{}, fmt.Errorf("load machine %s: %w", vm.id, ErrNotFound)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("load machine %s: %w", vm.id, err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("load machine %s: decode %s: %w", vm.id, MetaFile, err)
	}
	if m.ID != vm.id {
		return Meta{}, fmt.Errorf("load machine %s: %w: %s names machine %q", vm.id, ErrInvalid, MetaFile, m.ID)
	}
	vm.mu.Lock()
	vm.meta = m
	vm.mu.Unlock()
	return m, nil
}

// save writes machine.json atomically.
func (vm *VM) save(m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", MetaFile, err)
	}
	if err := writeFileAtomic(filepath.Join(vm.dir, MetaFile), append(b, '\n'), 0o600); err != nil {
		return err
	}
	vm.mu.Lock()
	vm.meta = m
	vm.mu.Unlock()
	return nil
}

// readAddress reads the address the agent wrote on its disk. The disk is
// the machine's: the file is opened without following a link or blocking
// on a FIFO, read only if regular, at most 256 bytes, and must be a
// host:port.
func (vm *VM) readAddress() string {
	b, err := ReadDiskFile(filepath.Join(vm.Disk(), AddressFile), 256)
	if err != nil {
		return ""
	}
	addr := strings.TrimSpace(string(b))
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return ""
	}
	return addr
}

// ReadDiskFile reads a regular file that a machine may have replaced: it
// never follows a symbolic link in the last component, never blocks on a
// FIFO or device, and reads at most max bytes.
func ReadDiskFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", filepath.Base(path))
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// UserData returns the machine's user data as it was created (Kloud's
// copy, not the one on the machine's disk).
func (vm *VM) UserData() (string, error) {
	b, err := os.ReadFile(filepath.Join(vm.dir, UserDataFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read user data of machine %s: %w", vm.id, err)
	}
	return string(b), nil
}

// Token returns the machine's agent token ("" when it has none).
func (vm *VM) Token() (string, error) { return vm.readToken() }

func (vm *VM) readToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(vm.dir, TokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read agent token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeToken stores the token with mode 0600, or removes it when empty.
func (vm *VM) writeToken(token string) error {
	path := filepath.Join(vm.dir, TokenFile)
	if token == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove agent token: %w", err)
		}
		return nil
	}
	if err := writeFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write agent token: %w", err)
	}
	return nil
}

// Duration is a time.Duration that reads and writes JSON as "1m30s".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("decode duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// AgentInfo asks the running agent for its /v1/info.
func (vm *VM) AgentInfo(ctx context.Context) (klient.Info, error) {
	st, err := vm.Status(ctx)
	if err != nil {
		return klient.Info{}, err
	}
	if st.State != Running {
		return klient.Info{}, fmt.Errorf("agent info of machine %s: %w: %s", vm.id, ErrNotRunning, st.Reason)
	}
	ctx, cancel := context.WithTimeout(ctx, vm.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+st.Address+"/v1/info", nil)
	if err != nil {
		return klient.Info{}, fmt.Errorf("agent info of machine %s: %w", vm.id, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return klient.Info{}, fmt.Errorf("agent info of machine %s: %w", vm.id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return klient.Info{}, fmt.Errorf("agent info of machine %s: /v1/info answered %d", vm.id, resp.StatusCode)
	}
	var info klient.Info
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return klient.Info{}, fmt.Errorf("agent info of machine %s: decode: %w", vm.id, err)
	}
	return info, nil
}

// writeFileAtomic writes data beside path and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(perm)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), werr)
	}
	return nil
}
