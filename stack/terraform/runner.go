package terraform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/kloud/kloud/internal/confine"
	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/stack"
)

// Errors of the Terraform runner that callers branch on.
var (
	// ErrRunInProgress is returned when a run of the same key (stack) is
	// already going on in this process. Kloud also guarantees one active job
	// per stack through job leases; this is the in-process guard.
	ErrRunInProgress = errors.New("a terraform run is already in progress for this stack")
	// ErrTerraformFailed is wrapped by the error of a Terraform command that
	// exited unsuccessfully (a bad template, a provider error).
	ErrTerraformFailed = errors.New("terraform failed")
	// ErrTerraformVersion is returned by NewRunner for a Terraform older
	// than 1.5.
	ErrTerraformVersion = errors.New("terraform 1.5 or newer is required")
)

// Files and directories of a working directory that the runner manages.
const (
	stateFileName  = "terraform.tfstate"
	dataDirName    = ".terraform"
	lockFileName   = ".terraform.lock.hcl"
	planFileName   = ".kloud.tfplan"
	cliConfigName  = ".terraformrc"
	backupFileName = "terraform.tfstate.backup"
	versionDirName = ".version"
	slotRootPrefix = ".slots-"
	mirrorInclude  = "kloud.local/*/*"
	defaultGrace   = 30 * time.Second
	stateSaveLimit = time.Minute
	// maxErrorText bounds the Terraform error text kept in a returned error;
	// the full output went to Run.Output line by line.
	maxErrorText = 4 << 10
)

// The oldest Terraform the runner accepts.
const (
	minTerraformMajor = 1
	minTerraformMinor = 5
)

// reservedEnv reports the variables the runner sets itself, which ExtraEnv
// may not override.
func reservedEnv(k string) bool {
	switch k {
	case "HOME", "TF_CLI_CONFIG_FILE", "TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR", "CHECKPOINT_DISABLE":
		return true
	}
	return false
}

var (
	keyPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	fileNamePat    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	varNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	// providerEnvPattern: a provider setting's variable, never PATH-like
	// process settings (those need no secret and the runner sets them).
	providerEnvPattern = regexp.MustCompile(`^[A-Z][A-Z0-9]*_[A-Z0-9_]+$`)
)

// StateBackend keeps the Terraform state of each key (stack) between runs.
// Kloud adapts its store to it.
type StateBackend interface {
	// LoadState returns the latest state saved for key, or nil, nil when
	// there is none.
	LoadState(ctx context.Context, key string) ([]byte, error)
	// SaveState stores a new state version. It refuses a serial that is not
	// greater than the latest saved one.
	SaveState(ctx context.Context, key string, serial int64, lineage string, state []byte) error
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// TerraformPath is the terraform (or tofu) binary, a path or a name
	// looked up in PATH. It must be version 1.5 or newer.
	TerraformPath string
	// PluginDir is the root of the filesystem mirror the kloud.local
	// providers are installed from (bin/plugins). Empty means none.
	PluginDir string
	// WorkRoot holds one working directory per key (<WorkRoot>/<key>) and
	// the CLI configuration the runner writes.
	WorkRoot string
	// Backend is where states are restored from and saved to, unless a Run
	// names its own.
	Backend StateBackend
	// Log receives the runner's own messages (never Terraform's output,
	// which goes to Run.Output). Nil means slog.Default().
	Log *slog.Logger
	// ExtraEnv is added to the environment of every Terraform process, for
	// instance settings the providers read. It must not hold Terraform's
	// own variables (TF_VAR_*, TF_LOG, TF_CLI_ARGS, ...).
	ExtraEnv map[string]string
	// Confiner runs Terraform and the provider plugins it starts confined:
	// they see only the run's working directory (read-write), the
	// Terraform binary, the plugin mirror and the CLI configuration
	// (read-only). Nil runs them unconfined.
	Confiner *confine.Confiner
	// NetworkMirror is a provider network mirror URL offered to Terraform
	// for providers the filesystem mirror does not hold (cloud providers);
	// empty means none, and only the filesystem mirror is used.
	NetworkMirror string
	// GracePeriod is how long a cancelled Terraform may take to stop after
	// its interrupt before it and its process group are killed. Zero means
	// 30 seconds.
	GracePeriod time.Duration
}

// Run is one Terraform operation on one stack.
type Run struct {
	// Key identifies the stack: it names the working directory and the
	// state. Letters, digits, '.', '_' and '-', starting with a letter or
	// digit, at most 128 characters.
	Key string
	// Template is the composed template to run.
	Template *stack.Template
	// Output receives each line Terraform prints, with every secret of
	// Template.Env masked. It is never called concurrently. Nil discards.
	Output func(line string)
	// Backend overrides RunnerConfig.Backend for this run (for instance to
	// record which job saved each state version).
	Backend StateBackend
	// Phase, when set, is told how long each Terraform command of the run
	// took (init, plan, show, apply, destroy), once per command.
	Phase func(cmd string, d time.Duration)
}

// PlannedResource is one managed resource of a plan.
type PlannedResource struct {
	Address string `json:"address"`
	Module  string `json:"module,omitempty"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	// Index is nil, an int (count) or a string (for_each).
	Index any `json:"index,omitempty"`
	// Action is create, update, delete, replace, read, no-op or forget.
	Action string `json:"action"`
	// Values are the planned attribute values (the prior ones for a
	// delete). Sensitive values read "(sensitive value)"; values known only
	// after apply are absent. Numbers are json.Number.
	Values map[string]any `json:"values,omitempty"`
}

// PlanResult is the outcome of Plan.
type PlanResult struct {
	// Changes reports whether applying would change anything.
	Changes   bool              `json:"changes"`
	Resources []PlannedResource `json:"resources"`
}

// StateResource is one managed resource instance in the state.
type StateResource struct {
	Address      string `json:"address"`
	Module       string `json:"module,omitempty"`
	Type         string `json:"type"`
	Name         string `json:"name"`
	Index        any    `json:"index,omitempty"` // nil, int (count) or string (for_each)
	ProviderName string `json:"provider_name"`
	// Values are the attribute values as the state holds them (numbers are
	// json.Number). Sensitive ones are included: do not log them.
	Values map[string]any `json:"values"`
	// SensitiveValues mirrors Values with true at every sensitive leaf.
	SensitiveValues json.RawMessage `json:"sensitive_values,omitempty"`
	Tainted         bool            `json:"tainted,omitempty"`
}

// ApplyResult is the state after Apply or Destroy.
type ApplyResult struct {
	// State is decoded from the state file itself, which spares a
	// `terraform show -json` process per run. It has the same shape and
	// values as show's output, except that attributes of dynamic type keep
	// the state file's {"value", "type"} wrapper and SensitiveValues marks
	// sensitive leaves only. Nil when there is no state.
	State *tfjson.State
	// Serial and Lineage identify the state version.
	Serial  int64
	Lineage string
	// Resources lists the managed resource instances, current objects only
	// (no deposed ones), in state order.
	Resources []StateResource
	// Outputs are the root module's output values, sensitive ones included.
	Outputs map[string]any
}

// ResourcesOfType returns the resources of one Terraform type.
func ResourcesOfType(res []StateResource, typ string) []StateResource {
	var out []StateResource
	for _, r := range res {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Runner runs Terraform on composed templates, one working directory and one
// state per key. Different keys may run at once; a key runs once at a time.
type Runner struct {
	cfg    RunnerConfig
	log    *slog.Logger
	tfPath string
	// execPath is what tfexec runs: tfPath, or the script that runs it
	// confined.
	execPath  string
	cliConfig string
	version   string
	grace     time.Duration

	// lockMu guards the dependency lock cache file (runner_lock.go).
	lockMu sync.Mutex

	mu      sync.Mutex
	running map[string]bool
	// slots are reusable tfexec handles, each bound to a symbolic link under
	// slotRoot that a run points at its working directory. A tfexec handle
	// asks Terraform for its version before its first command; reusing
	// handles spares that process on every run of a new stack, and their
	// number stays that of the runs at once.
	slotRoot string
	slots    []*slot
	nslots   int
}

// NewRunner checks the Terraform binary (present, version 1.5 or newer) and
// the plugin mirror, creates WorkRoot and writes the Terraform CLI
// configuration there.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	if cfg.TerraformPath == "" {
		return nil, errors.New("new runner: TerraformPath is required")
	}
	if cfg.WorkRoot == "" {
		return nil, errors.New("new runner: WorkRoot is required")
	}
	tfPath, err := exec.LookPath(cfg.TerraformPath)
	if err != nil {
		return nil, fmt.Errorf("new runner: TerraformPath %q: %w", cfg.TerraformPath, err)
	}
	if tfPath, err = filepath.Abs(tfPath); err != nil {
		return nil, fmt.Errorf("new runner: TerraformPath: %w", err)
	}
	if tfPath, err = filepath.EvalSymlinks(tfPath); err != nil {
		return nil, fmt.Errorf("new runner: TerraformPath: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkRoot, 0o700); err != nil {
		return nil, fmt.Errorf("new runner: create WorkRoot: %w", err)
	}
	// The real path: a confined Terraform sees its working directory at
	// the path the kernel reports, with no symbolic link on the way.
	workRoot, err := filepath.Abs(cfg.WorkRoot)
	if err == nil {
		workRoot, err = filepath.EvalSymlinks(workRoot)
	}
	if err != nil {
		return nil, fmt.Errorf("new runner: WorkRoot: %w", err)
	}
	cfg.WorkRoot = workRoot
	if cfg.PluginDir != "" {
		if cfg.PluginDir, err = filepath.Abs(cfg.PluginDir); err == nil {
			cfg.PluginDir, err = filepath.EvalSymlinks(cfg.PluginDir)
		}
		if err != nil {
			return nil, fmt.Errorf("new runner: PluginDir: %w", err)
		}
		if fi, err := os.Stat(cfg.PluginDir); err != nil {
			return nil, fmt.Errorf("new runner: PluginDir: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("new runner: PluginDir %s is not a directory", cfg.PluginDir)
		}
	}
	for k := range cfg.ExtraEnv {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("new runner: ExtraEnv: invalid variable name %q", k)
		}
		if reservedEnv(k) || len(tfexec.ProhibitedEnv(map[string]string{k: ""})) > 0 {
			return nil, fmt.Errorf("new runner: ExtraEnv: %s is set by the runner and may not be overridden", k)
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Confiner == nil {
		cfg.Confiner = confine.Unconfined()
	}
	r := &Runner{
		cfg:       cfg,
		log:       cfg.Log,
		tfPath:    tfPath,
		execPath:  tfPath,
		cliConfig: filepath.Join(workRoot, cliConfigName),
		grace:     cfg.GracePeriod,
		running:   make(map[string]bool),
	}
	if r.grace <= 0 {
		r.grace = defaultGrace
	}
	if err := os.MkdirAll(workRoot, 0o700); err != nil {
		return nil, fmt.Errorf("new runner: create WorkRoot: %w", err)
	}
	if err := os.Chmod(workRoot, 0o700); err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	if err := writeFileAtomic(r.cliConfig, []byte(cliConfig(cfg.PluginDir, cfg.NetworkMirror))); err != nil {
		return nil, fmt.Errorf("new runner: write CLI configuration: %w", err)
	}
	if cfg.Confiner.Enabled() {
		// The CLI configuration is read by the confined user (it is bound
		// read-only into each run).
		if err := cfg.Confiner.HandOver(r.cliConfig); err != nil {
			return nil, fmt.Errorf("new runner: %w", err)
		}
		if r.execPath, err = r.writeConfinedTerraform(); err != nil {
			return nil, fmt.Errorf("new runner: %w", err)
		}
	} else if r.execPath, err = r.writePrivateTerraform(); err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	if r.slotRoot, err = makeSlotRoot(workRoot); err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	if err := r.checkVersion(); err != nil {
		return nil, fmt.Errorf("new runner: %w", err)
	}
	return r, nil
}

// checkVersion asks the binary for its version and refuses one before 1.5.
// The tfexec handle that asked keeps the answer: it becomes the first slot.
func (r *Runner) checkVersion() error {
	dir := filepath.Join(r.cfg.WorkRoot, versionDirName)
	if err := r.cfg.Confiner.PrepareDir(dir); err != nil {
		return fmt.Errorf("check terraform version: %w", err)
	}
	sl, err := r.takeSlot(dir)
	if err != nil {
		return fmt.Errorf("check terraform version: %w", err)
	}
	defer r.putSlot(sl)
	if err := sl.tf.SetEnv(r.baseEnv(dir)); err != nil {
		return fmt.Errorf("check terraform version: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, _, err := sl.tf.Version(ctx, false)
	if err != nil {
		return fmt.Errorf("check terraform version of %s: %w", r.tfPath, err)
	}
	seg := v.Segments()
	for len(seg) < 2 {
		seg = append(seg, 0)
	}
	if seg[0] < minTerraformMajor || (seg[0] == minTerraformMajor && seg[1] < minTerraformMinor) {
		return fmt.Errorf("%s is version %s: %w", r.tfPath, v, ErrTerraformVersion)
	}
	r.version = v.String()
	return nil
}

// TerraformVersion is the version of the Terraform binary in use.
func (r *Runner) TerraformVersion() string { return r.version }

// WorkDir is the working directory of a key.
func (r *Runner) WorkDir(key string) string { return filepath.Join(r.cfg.WorkRoot, key) }

// RemoveWorkDir deletes the working directory of a key (its state stays in
// the backend), for instance once a stack is destroyed or deleted. It
// refuses with ErrRunInProgress while the key runs.
func (r *Runner) RemoveWorkDir(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("remove work dir: %w", err)
	}
	if err := r.acquire(key); err != nil {
		return fmt.Errorf("remove work dir %s: %w", key, err)
	}
	defer r.release(key)
	if err := os.RemoveAll(r.WorkDir(key)); err != nil {
		return fmt.Errorf("remove work dir %s: %w", key, err)
	}
	return nil
}

// cliConfig is the Terraform CLI configuration: providers come only from
// the filesystem mirror, and from the network mirror Kloud was given, if
// any. There is no direct installation: `terraform init` never reaches a
// registry Kloud did not name.
func cliConfig(pluginDir, networkMirror string) string {
	var b strings.Builder
	b.WriteString("# Written by Kloud's Terraform runner.\n")
	b.WriteString("disable_checkpoint = true\n\n")
	b.WriteString("provider_installation {\n")
	if pluginDir != "" {
		fmt.Fprintf(&b, "  filesystem_mirror {\n    path    = %s\n    include = [%s]\n  }\n",
			hclString(pluginDir), hclString(mirrorInclude))
	}
	if networkMirror != "" {
		fmt.Fprintf(&b, "  network_mirror {\n    url     = %s\n    exclude = [%s]\n  }\n",
			hclString(networkMirror), hclString(mirrorInclude))
	}
	if pluginDir == "" && networkMirror == "" {
		// Terraform installs directly when no method is named: name one
		// that holds nothing.
		b.WriteString("  filesystem_mirror {\n    path    = \"/nonexistent\"\n    include = [\"kloud.local/*/*\"]\n  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// hclString quotes s as an HCL string literal without interpolation.
func hclString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$', '%':
			b.WriteByte(c)
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// baseEnv is the environment every Terraform process gets: a minimal base,
// never the server's own environment (which may hold Kloud's secrets).
func (r *Runner) baseEnv(dir string) map[string]string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := map[string]string{
		"PATH":   path,
		"TMPDIR": os.TempDir(),
	}
	for k, v := range r.cfg.ExtraEnv {
		env[k] = v
	}
	env["HOME"] = dir
	env["TF_CLI_CONFIG_FILE"] = r.cliConfig
	env["TF_DATA_DIR"] = filepath.Join(dir, dataDirName)
	env["CHECKPOINT_DISABLE"] = "1"
	return env
}

func checkKey(key string) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("key %q: want letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128 characters", key)
	}
	return nil
}

// checkRun validates a run's key and template before anything touches disk.
func checkRun(run Run) error {
	if err := checkKey(run.Key); err != nil {
		return err
	}
	t := run.Template
	if t == nil {
		return errors.New("template is required")
	}
	main := t.FileName()
	for name := range t.Generated {
		switch {
		case !fileNamePat.MatchString(name):
			return fmt.Errorf("template.Generated: file name %q: want a plain file name", name)
		case name == main:
			return fmt.Errorf("template.Generated: file name %q is the template's own file", name)
		case strings.HasPrefix(name, stateFileName):
			return fmt.Errorf("template.Generated: file name %q is reserved for the state", name)
		}
	}
	for name := range t.Env {
		if !varNamePattern.MatchString(name) {
			return fmt.Errorf("template.Env: %q is not a valid Terraform variable name", name)
		}
	}
	for name := range t.ProviderEnv {
		if !providerEnvPattern.MatchString(name) || reservedEnv(name) || len(tfexec.ProhibitedEnv(map[string]string{name: ""})) > 0 {
			return fmt.Errorf("template.ProviderEnv: %q is not a name a provider setting may have (upper-case letters, digits, '_'; not one Terraform or the runner sets)", name)
		}
	}
	return nil
}

func (r *Runner) acquire(key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[key] {
		return ErrRunInProgress
	}
	r.running[key] = true
	return nil
}

func (r *Runner) release(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, key)
}

// slot is a tfexec handle whose working directory is a symbolic link.
type slot struct {
	link string
	tf   *tfexec.Terraform
}

// makeSlotRoot creates this runner's directory of slot links under the work
// root, removing those of runners whose process is gone.
func makeSlotRoot(workRoot string) (string, error) {
	old, _ := filepath.Glob(filepath.Join(workRoot, slotRootPrefix+"*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(d), slotRootPrefix), "-", 2)[0])
		if err == nil && pid != os.Getpid() && !processAlive(pid) {
			os.RemoveAll(d)
		}
	}
	dir, err := os.MkdirTemp(workRoot, fmt.Sprintf("%s%d-", slotRootPrefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("create slot dir: %w", err)
	}
	return dir, nil
}

// takeSlot returns a free slot pointed at dir, creating one if none is free.
func (r *Runner) takeSlot(dir string) (*slot, error) {
	r.mu.Lock()
	var sl *slot
	if n := len(r.slots); n > 0 {
		sl, r.slots = r.slots[n-1], r.slots[:n-1]
	} else {
		sl = &slot{link: filepath.Join(r.slotRoot, strconv.Itoa(r.nslots))}
		r.nslots++
	}
	r.mu.Unlock()
	if err := pointLink(sl.link, dir); err != nil {
		r.putSlot(sl)
		return nil, fmt.Errorf("point slot at work dir: %w", err)
	}
	if sl.tf == nil {
		tf, err := tfexec.NewTerraform(sl.link, r.execPath)
		if err != nil {
			r.putSlot(sl)
			return nil, err
		}
		if err := tf.SetWaitDelay(r.grace); err != nil {
			// Not supported on this platform: the default kill on cancel stays.
			r.log.Debug("terraform graceful cancel unavailable", "err", err)
		}
		tf.SetLogger(slogPrintf{r.log})
		sl.tf = tf
	}
	return sl, nil
}

func (r *Runner) putSlot(sl *slot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slots = append(r.slots, sl)
}

// pointLink makes link a symbolic link to target, atomically.
func pointLink(link, target string) error {
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// slogPrintf adapts tfexec's logger to slog at debug level.
type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, v ...any) {
	p.l.Debug("tfexec", "msg", strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// session is one run in progress.
type session struct {
	r       *Runner
	run     Run
	dir     string
	tf      *tfexec.Terraform
	slot    *slot
	backend StateBackend
	masker  *secretmask.Masker
	sink    *lineSink
	stdout  *lineWriter
	stderr  *lineWriter
	// lastSaved is the serial of the latest state in the backend, -1 when
	// it has none.
	lastSaved int64
}

// Plan runs terraform init and plan, and returns the planned resources.
// It changes no state: the state is saved only if restoring it found a local
// state newer than the backend's.
func (r *Runner) Plan(ctx context.Context, run Run) (*PlanResult, error) {
	var res *PlanResult
	_, err := r.do(ctx, run, "plan", func(ctx context.Context, s *session) error {
		planPath := filepath.Join(s.dir, planFileName)
		// The plan file holds every variable's value, secrets included:
		// it lives only as long as this function.
		defer os.Remove(planPath)
		var (
			changes bool
			plan    *tfjson.Plan
		)
		if err := s.exec(ctx, "plan", func(ctx context.Context) error {
			var err error
			changes, err = s.tf.Plan(ctx, tfexec.Out(planFileName))
			return err
		}); err != nil {
			return err
		}
		if err := s.exec(ctx, "show", func(ctx context.Context) error {
			var err error
			plan, err = s.tf.ShowPlanFile(ctx, planFileName)
			return err
		}); err != nil {
			return err
		}
		res = planResult(plan, changes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Apply runs terraform init and apply. On failure it returns the error
// together with the result read from whatever state Terraform left, when
// there is one (a failed apply may have created resources); that state has
// been saved either way.
func (r *Runner) Apply(ctx context.Context, run Run) (*ApplyResult, error) {
	return r.do(ctx, run, "apply", func(ctx context.Context, s *session) error {
		return s.exec(ctx, "apply", func(ctx context.Context) error { return s.tf.Apply(ctx) })
	})
}

// Destroy runs terraform init and destroy; like Apply it returns the
// remaining state, saved, with any error.
func (r *Runner) Destroy(ctx context.Context, run Run) (*ApplyResult, error) {
	return r.do(ctx, run, "destroy", func(ctx context.Context, s *session) error {
		return s.exec(ctx, "destroy", func(ctx context.Context) error { return s.tf.Destroy(ctx) })
	})
}

// do is the frame of every run: claim the key, rebuild the working directory
// and restore the state, init, run body, then save the state whatever
// happened and read the result from it.
func (r *Runner) do(ctx context.Context, run Run, op string, body func(context.Context, *session) error) (*ApplyResult, error) {
	if err := checkRun(run); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	backend := run.Backend
	if backend == nil {
		backend = r.cfg.Backend
	}
	if backend == nil {
		return nil, fmt.Errorf("%s stack %s: no state backend configured", op, run.Key)
	}
	if err := r.acquire(run.Key); err != nil {
		return nil, fmt.Errorf("%s stack %s: %w", op, run.Key, err)
	}
	defer r.release(run.Key)

	start := time.Now()
	masker := envMasker(run.Template.Env, run.Template.ProviderEnv)
	sink := &lineSink{emit: run.Output, mask: masker.Mask}
	s := &session{
		r: r, run: run, dir: r.WorkDir(run.Key), backend: backend,
		masker: masker, sink: sink,
		stdout: &lineWriter{sink: sink}, stderr: &lineWriter{sink: sink},
		lastSaved: -1,
	}
	err := s.prepare(ctx)
	if s.slot != nil {
		defer r.putSlot(s.slot)
	}
	if err != nil {
		return nil, fmt.Errorf("%s stack %s: %w", op, run.Key, err)
	}
	runErr := s.init(ctx)
	if runErr == nil {
		runErr = body(ctx, s)
	}
	s.stdout.Flush()
	s.stderr.Flush()
	res, saveErr := s.persist(ctx)
	err = errors.Join(runErr, saveErr)
	attrs := []any{"key", run.Key, "op", op, "duration", time.Since(start).Round(time.Millisecond)}
	if res != nil {
		attrs = append(attrs, "serial", res.Serial, "resources", len(res.Resources))
	}
	if err != nil {
		r.log.Info("terraform run failed", append(attrs, "err", err)...)
		return res, fmt.Errorf("%s stack %s: %w", op, run.Key, err)
	}
	r.log.Info("terraform run done", attrs...)
	return res, nil
}

// prepare rebuilds the working directory from the template and restores the
// latest state into terraform.tfstate.
func (s *session) prepare(ctx context.Context) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	statePath := filepath.Join(s.dir, stateFileName)
	local, err := os.ReadFile(statePath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read local state: %w", err)
	}
	remote, err := s.backend.LoadState(ctx, s.run.Key)
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	state, err := s.chooseState(local, remote)
	if err != nil {
		return err
	}

	// Everything but the provider cache and the dependency lock file is
	// rebuilt from scratch.
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read work dir: %w", err)
	}
	for _, e := range entries {
		if e.Name() == dataDirName || e.Name() == lockFileName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			return fmt.Errorf("clean work dir: %w", err)
		}
	}
	t := s.run.Template
	if err := os.WriteFile(filepath.Join(s.dir, t.FileName()), []byte(t.Content), 0o600); err != nil {
		return fmt.Errorf("write template: %w", err)
	}
	for name, content := range t.Generated {
		if err := os.WriteFile(filepath.Join(s.dir, name), content, 0o600); err != nil {
			return fmt.Errorf("write template file %s: %w", name, err)
		}
	}
	if state != nil {
		if err := os.WriteFile(statePath, state, 0o600); err != nil {
			return fmt.Errorf("restore state: %w", err)
		}
	}

	s.seedLockFile()
	if err := s.r.cfg.Confiner.PrepareDir(s.dir); err != nil {
		return fmt.Errorf("prepare terraform: %w", err)
	}
	sl, err := s.r.takeSlot(s.dir)
	if err != nil {
		return fmt.Errorf("prepare terraform: %w", err)
	}
	s.slot = sl
	tf := sl.tf
	env := s.r.baseEnv(s.dir)
	if err := tf.SetEnv(env); err != nil {
		return fmt.Errorf("prepare terraform: %w", err)
	}
	// tfexec refuses TF_VAR_* in SetEnv (it wants -var flags, which every
	// user of the machine can read in the process list). It keeps the map
	// it is given, so the secret variables are added to it afterwards and
	// reach Terraform through its environment only. TestRunnerSecrets
	// checks they do.
	for name, v := range t.Env {
		env["TF_VAR_"+name] = v.Reveal()
	}
	for name, v := range t.ProviderEnv {
		env[name] = v.Reveal()
	}
	tf.SetStdout(s.stdout)
	tf.SetStderr(s.stderr)
	s.tf = tf
	return nil
}

// chooseState picks the state to restore: the backend's, unless the working
// directory holds a newer one of the same lineage (a save that failed last
// time), or one while the backend has none. lastSaved is the backend's
// serial, so a newer local state is saved after the run.
func (s *session) chooseState(local, remote []byte) ([]byte, error) {
	var rm stateMeta
	if remote != nil {
		var err error
		if rm, err = readStateMeta(remote); err != nil {
			return nil, fmt.Errorf("restore state: backend state: %w", err)
		}
		s.lastSaved = rm.Serial
	}
	if local == nil {
		return remote, nil
	}
	lm, err := readStateMeta(local)
	if err != nil {
		return remote, nil // an unreadable leftover: the backend wins
	}
	if remote == nil || (lm.Lineage == rm.Lineage && lm.Serial > rm.Serial) {
		s.r.log.Warn("restoring local terraform state newer than the backend's",
			"key", s.run.Key, "local_serial", lm.Serial, "backend_serial", s.lastSaved)
		return local, nil
	}
	return remote, nil
}

// init runs terraform init. The dependency lock file an earlier run left
// may no longer fit: the mirror's provider was rebuilt (its checksum
// changed) or the template's version constraints changed. Init then fails
// naming the lock file, and is retried once without it.
func (s *session) init(ctx context.Context) error {
	err := s.exec(ctx, "init", func(ctx context.Context) error { return s.tf.Init(ctx) })
	if err == nil {
		s.rememberLockFile()
	}
	if err == nil || ctx.Err() != nil || !lockFileProblem(err) {
		return err
	}
	lock := filepath.Join(s.dir, lockFileName)
	if _, statErr := os.Stat(lock); statErr != nil {
		return err
	}
	s.sink.line("kloud: the dependency lock file no longer fits; retrying terraform init without it")
	if rmErr := os.Remove(lock); rmErr != nil {
		return errors.Join(err, rmErr)
	}
	if err := s.exec(ctx, "init", func(ctx context.Context) error { return s.tf.Init(ctx) }); err != nil {
		return err
	}
	s.rememberLockFile()
	return nil
}

// lockFileProblem reports whether a failed init blames the dependency lock
// file (a checksum mismatch, a locked version the constraints exclude).
func lockFileProblem(err error) bool {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	return strings.Contains(msg, "dependency lock file") || strings.Contains(msg, "locked provider")
}

// exec runs one Terraform command under the runner's cancellation: when ctx
// ends, Terraform gets an interrupt and GracePeriod to stop, then it and its
// process group are killed; whatever it left in its group is killed once it
// has returned.
func (s *session) exec(ctx context.Context, cmd string, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return s.commandError(ctx, cmd, err)
	}
	// runCtx is cancelled by the supervisor below only after it has found
	// the Terraform process, so its process group is known before any
	// signal is sent.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan struct{})
	var (
		wg     sync.WaitGroup
		groups []int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		groups = terraformGroups(s.dir)
		cancel() // tfexec interrupts Terraform
		t := time.NewTimer(s.r.grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			s.r.log.Warn("terraform did not stop within the grace period; killing it",
				"key", s.run.Key, "cmd", cmd, "grace", s.r.grace)
			killGroups(groups)
		}
	}()
	start := time.Now()
	err := fn(runCtx)
	s.r.log.Debug("terraform command done", "key", s.run.Key, "cmd", cmd, "duration", time.Since(start), "ok", err == nil)
	if s.run.Phase != nil {
		s.run.Phase(cmd, time.Since(start))
	}
	close(done)
	wg.Wait()
	// groups is set only when ctx ended while the command ran: reap what
	// Terraform left in its group (a provisioner's child, a provider it
	// could not stop).
	killGroups(groups)
	if err != nil {
		return s.commandError(ctx, cmd, err)
	}
	return nil
}

// commandError turns a tfexec error into one whose text has every secret
// masked and is bounded. It wraps ErrTerraformFailed, and the context's
// error when the run was cancelled.
func (s *session) commandError(ctx context.Context, cmd string, err error) error {
	e := &runError{cmd: cmd, cause: ErrTerraformFailed}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.cause = ctxErr
		e.msg = "cancelled: " + ctxErr.Error()
		return e
	}
	msg := s.masker.Mask(strings.TrimSpace(err.Error()))
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "…"
	}
	e.msg = msg
	return e
}

// runError is a failed Terraform command with its message masked. It does
// not wrap tfexec's own error, whose text holds Terraform's raw stderr.
type runError struct {
	cmd   string
	msg   string
	cause error
}

func (e *runError) Error() string { return "terraform " + e.cmd + ": " + e.msg }
func (e *runError) Unwrap() error { return e.cause }

// persist reads terraform.tfstate after a run, saves it when its serial is
// newer than the backend's, and decodes the result. It runs even when ctx is
// done: the state of a cancelled run must not be lost.
func (s *session) persist(ctx context.Context) (*ApplyResult, error) {
	// Terraform's backup copy is never needed: the backend keeps every
	// version.
	os.Remove(filepath.Join(s.dir, backupFileName))
	statePath := filepath.Join(s.dir, stateFileName)
	data, err := os.ReadFile(statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	raw, err := decodeRawState(data)
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var saveErr error
	if raw.Serial > s.lastSaved {
		saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateSaveLimit)
		saveErr = s.backend.SaveState(saveCtx, s.run.Key, raw.Serial, raw.Lineage, data)
		cancel()
		if saveErr != nil {
			saveErr = fmt.Errorf("save state serial %d: %w", raw.Serial, saveErr)
		} else {
			s.lastSaved = raw.Serial
		}
	}
	if saveErr == nil {
		// The state holds agent tokens and user data: once the backend has
		// it (sealed), no copy stays in clear on disk. A state the backend
		// refused stays, so the next run saves it.
		if err := os.Remove(statePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			saveErr = fmt.Errorf("remove local state: %w", err)
		}
	}
	res, err := raw.result()
	if err != nil {
		return nil, errors.Join(saveErr, fmt.Errorf("decode state: %w", err))
	}
	return res, saveErr
}

// writeFileAtomic writes a file through a temporary one and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// planResult turns a JSON plan into the managed resources it changes.
func planResult(p *tfjson.Plan, changes bool) *PlanResult {
	res := &PlanResult{Changes: changes, Resources: []PlannedResource{}}
	if p == nil {
		return res
	}
	for _, rc := range p.ResourceChanges {
		if rc == nil || rc.Mode != tfjson.ManagedResourceMode || rc.Change == nil {
			continue
		}
		pr := PlannedResource{
			Address: rc.Address,
			Module:  rc.ModuleAddress,
			Type:    rc.Type,
			Name:    rc.Name,
			Index:   normalizeIndex(rc.Index),
			Action:  actionName(rc.Change.Actions),
		}
		values, sens := rc.Change.After, rc.Change.AfterSensitive
		if rc.Change.Actions.Delete() {
			values, sens = rc.Change.Before, rc.Change.BeforeSensitive
		}
		if m, ok := redactSensitive(values, sens).(map[string]any); ok {
			pr.Values = m
		}
		res.Resources = append(res.Resources, pr)
	}
	sort.SliceStable(res.Resources, func(i, j int) bool { return res.Resources[i].Address < res.Resources[j].Address })
	return res
}

func actionName(a tfjson.Actions) string {
	switch {
	case a.Replace():
		return "replace"
	case a.Create():
		return "create"
	case a.Delete():
		return "delete"
	case a.Update():
		return "update"
	case a.Read():
		return "read"
	case a.Forget():
		return "forget"
	case a.NoOp():
		return "no-op"
	}
	parts := make([]string, len(a))
	for i, x := range a {
		parts[i] = string(x)
	}
	return strings.Join(parts, ",")
}

// sensitiveMark replaces a sensitive value in a plan preview.
const sensitiveMark = "(sensitive value)"

// redactSensitive returns v with every leaf marked true in sens replaced by
// sensitiveMark. sens mirrors v's structure (Terraform's *_sensitive).
func redactSensitive(v, sens any) any {
	switch s := sens.(type) {
	case bool:
		if s {
			return sensitiveMark
		}
		return v
	case map[string]any:
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[k] = redactSensitive(x, s[k])
		}
		return out
	case []any:
		l, ok := v.([]any)
		if !ok {
			return v
		}
		out := make([]any, len(l))
		for i, x := range l {
			var si any
			if i < len(s) {
				si = s[i]
			}
			out[i] = redactSensitive(x, si)
		}
		return out
	}
	return v
}

// normalizeIndex turns a JSON index (json.Number or float64 for count,
// string for for_each) into an int or a string.
func normalizeIndex(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		return x.String()
	case float64:
		return int(x)
	}
	return v
}
