// Package confine runs what a member controls — Terraform with its
// provider plugins, and every sandbox machine's agent and user data — inside
// bubblewrap (bwrap): as an unprivileged user, in its own mount, PID, IPC
// and UTS namespaces, seeing only its own directory (read-write), the
// read-only system paths it needs and what its Spec binds read-only. Kloud's
// data dir, other stacks' working directories, other machines' directories
// and other processes' /proc stay invisible.
//
// Two ways in, chosen by who runs Kloud:
//   - as root (a service): bwrap runs as root with every capability dropped
//     but setuid/setgid, and setpriv switches to the unprivileged uid/gid
//     (65534, "nobody", by default) before the confined program runs. The
//     confined process is that uid on the host, not root in a namespace.
//   - as another user: bwrap creates a user namespace mapping that user to
//     uid 65534 inside; the process can do nothing the user could not.
//
// Where neither works, Detect fails and Kloud refuses to start unless it is
// told to run unconfined (Unconfined), which it then says loudly.
package confine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mode is how confined processes are run.
type Mode string

// The modes.
const (
	// ModeOff runs everything as Kloud's own user, with no namespaces.
	ModeOff Mode = "unconfined"
	// ModeSetuid is bwrap as root, dropping to an unprivileged uid.
	ModeSetuid Mode = "bwrap-setuid"
	// ModeUserNS is bwrap in a user namespace of a non-root Kloud.
	ModeUserNS Mode = "bwrap-userns"
)

// DefaultID is the uid and gid confined processes run as when Kloud runs as
// root ("nobody" on Debian).
const DefaultID = 65534

// ErrUnavailable is wrapped by Detect's error when confinement cannot be
// had on this host.
var ErrUnavailable = errors.New("confinement is not available")

// Options configure Detect.
type Options struct {
	// Bwrap is the bubblewrap binary; "bwrap" on PATH when empty.
	Bwrap string
	// UID and GID are the unprivileged ids confined processes run as when
	// Kloud runs as root; DefaultID when zero. They may not be 0.
	UID, GID int
}

// Confiner builds the command lines of confined processes. The zero value
// is not usable; use Detect or Unconfined.
type Confiner struct {
	mode    Mode
	bwrap   string
	setpriv string
	env     string
	uid     int
	gid     int
}

// Unconfined returns a Confiner that confines nothing: members can run code
// as Kloud's user.
func Unconfined() *Confiner { return &Confiner{mode: ModeOff, uid: os.Getuid(), gid: os.Getgid()} }

// Detect finds bubblewrap and proves it works here by running a confined
// program. Its error wraps ErrUnavailable and says what is missing.
func Detect(ctx context.Context, opt Options) (*Confiner, error) {
	bw := opt.Bwrap
	if bw == "" {
		bw = "bwrap"
	}
	path, err := exec.LookPath(bw)
	if err != nil {
		return nil, fmt.Errorf("%w: bubblewrap (%s) not found: install the bubblewrap package (./build.sh does) or run kloud serve --unconfined", ErrUnavailable, bw)
	}
	c := &Confiner{bwrap: path, uid: opt.UID, gid: opt.GID}
	if os.Geteuid() == 0 {
		c.mode = ModeSetuid
		if c.uid == 0 {
			c.uid = DefaultID
		}
		if c.gid == 0 {
			c.gid = DefaultID
		}
		if c.setpriv, err = exec.LookPath("setpriv"); err != nil {
			return nil, fmt.Errorf("%w: setpriv (util-linux) not found", ErrUnavailable)
		}
	} else {
		c.mode = ModeUserNS
		c.uid, c.gid = os.Getuid(), os.Getgid()
	}
	if c.env, err = exec.LookPath("env"); err != nil {
		return nil, fmt.Errorf("%w: env (coreutils) not found", ErrUnavailable)
	}
	if err := c.probe(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return c, nil
}

// probe runs `true` confined in a scratch directory.
func (c *Confiner) probe(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "kloud-confine-probe-")
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := c.PrepareDir(dir); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := c.Command(Spec{Dir: dir, DieWithParent: true}, []string{"true"})
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("a confined test program failed (%v): %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Mode is how this Confiner runs processes.
func (c *Confiner) Mode() Mode { return c.mode }

// Enabled reports whether processes are confined at all.
func (c *Confiner) Enabled() bool { return c.mode != ModeOff }

// IDs are the uid and gid that confined processes write files as on the
// host.
func (c *Confiner) IDs() (uid, gid int) { return c.uid, c.gid }

// String describes the confinement for logs and /healthz.
func (c *Confiner) String() string {
	switch c.mode {
	case ModeSetuid:
		return fmt.Sprintf("bubblewrap, as uid %d", c.uid)
	case ModeUserNS:
		return "bubblewrap, in a user namespace of uid " + strconv.Itoa(c.uid)
	}
	return "UNCONFINED: members' templates and machines run code as Kloud's own user and can read its data"
}

// PrepareDir creates dir if needed (mode 0700) and hands it, with
// everything in it, to the confined user, so a confined process may write
// there and nobody else may look in.
func (c *Confiner) PrepareDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("prepare confined dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("prepare confined dir: %w", err)
	}
	if c.mode != ModeSetuid {
		return nil
	}
	return c.HandOver(dir)
}

// HandOver gives dir and everything below it to the confined user (in
// ModeSetuid; elsewhere the files already belong to the user confined
// processes run as). Symbolic links are changed, never followed.
func (c *Confiner) HandOver(dir string) error {
	if c.mode != ModeSetuid {
		return nil
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == c.uid && int(st.Gid) == c.gid {
				return nil
			}
		}
		return os.Lchown(p, c.uid, c.gid)
	})
	if err != nil {
		return fmt.Errorf("hand %s to the confined user: %w", dir, err)
	}
	return nil
}

// Bind is a host path made visible inside the confinement.
type Bind struct {
	// Src is the host path; Dst where it appears inside (Src when empty).
	Src, Dst string
	// ReadOnly binds it read-only.
	ReadOnly bool
	// Try skips it when Src does not exist.
	Try bool
}

// Spec is one confined process.
type Spec struct {
	// Dir is the process's own directory, bound read-write at DirInside
	// (Dir's own path when empty); the process starts there.
	Dir       string
	DirInside string
	// Binds are further paths made visible, typically read-only binaries.
	Binds []Bind
	// Symlinks are created inside: link name → target.
	Symlinks map[string]string
	// DieWithParent kills the confined processes when the bwrap process
	// (or its parent) dies: right for Terraform, wrong for a machine that
	// must outlive Kloud.
	DieWithParent bool
	// InfoFD, when > 0, is a descriptor (of the bwrap process) bwrap writes
	// its JSON info to, {"child-pid": N}: the host pid of the confined
	// program, which runs as the PID namespace's first process.
	InfoFD int
	// Hostname is the UTS name inside ("kloud-sandbox" when empty).
	Hostname string
}

// systemDirs are bound read-only (or recreated as the host's symbolic
// links) in every confinement.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// systemFiles are the parts of /etc a program may need: name resolution,
// CA certificates, users and groups (no passwords: /etc/shadow is never
// bound), time zone, the loader cache and Debian's alternatives.
var systemFiles = []string{
	"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/host.conf",
	"/etc/passwd", "/etc/group", "/etc/localtime", "/etc/ld.so.cache",
	"/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives",
	"/etc/mime.types", "/etc/protocols", "/etc/services",
}

// Command returns the argv that runs argv confined per spec. With the
// Confiner off it returns argv unchanged (the caller sets the working
// directory).
func (c *Confiner) Command(spec Spec, argv []string) []string {
	if c.mode == ModeOff {
		return argv
	}
	inside := spec.DirInside
	if inside == "" {
		inside = spec.Dir
	}
	host := spec.Hostname
	if host == "" {
		host = "kloud-sandbox"
	}
	a := []string{c.bwrap,
		"--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try", "--new-session",
		"--hostname", host,
		"--as-pid-1",
		"--proc", "/proc", "--dev", "/dev",
		"--perms", "1777", "--tmpfs", "/tmp",
		"--perms", "0755", "--dir", "/var",
		"--perms", "1777", "--dir", "/var/tmp",
		"--perms", "0755", "--dir", "/run",
	}
	if spec.DieWithParent {
		a = append(a, "--die-with-parent")
	}
	if spec.InfoFD > 0 {
		a = append(a, "--info-fd", strconv.Itoa(spec.InfoFD))
	}
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	// bwrap makes the missing parents of a destination private (0700):
	// make them 0755 first, so the unprivileged user can walk to what it
	// is given.
	made := map[string]bool{"/": true, "/tmp": true, "/proc": true, "/dev": true, "/var": true, "/run": true}
	parents := func(dst string) {
		var todo []string
		for d := filepath.Dir(dst); !made[d]; d = filepath.Dir(d) {
			todo = append(todo, d)
			made[d] = true
		}
		for i := len(todo) - 1; i >= 0; i-- {
			a = append(a, "--perms", "0755", "--dir", todo[i])
		}
	}
	for _, f := range systemFiles {
		parents(f)
		a = append(a, "--ro-bind-try", f, f)
	}
	for _, b := range spec.Binds {
		dst := b.Dst
		if dst == "" {
			dst = b.Src
		}
		op := "--bind"
		if b.ReadOnly {
			op = "--ro-bind"
		}
		if b.Try {
			op += "-try"
		}
		parents(dst)
		a = append(a, op, b.Src, dst)
	}
	if spec.Dir != "" {
		parents(inside)
		a = append(a, "--bind", spec.Dir, inside)
	}
	links := slices.Sorted(maps.Keys(spec.Symlinks))
	for _, link := range links {
		parents(link)
		a = append(a, "--symlink", spec.Symlinks[link], link)
	}
	if c.mode == ModeUserNS {
		a = append(a, "--unshare-user", "--disable-userns", "--uid", strconv.Itoa(DefaultID), "--gid", strconv.Itoa(DefaultID))
	} else {
		a = append(a, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP")
	}
	a = append(a, "--")
	if c.mode == ModeSetuid {
		a = append(a, c.setpriv,
			"--reuid", strconv.Itoa(c.uid), "--regid", strconv.Itoa(c.gid), "--clear-groups",
			"--inh-caps", "-all", "--bounding-set", "-all", "--no-new-privs", "--")
	}
	if spec.Dir != "" {
		a = append(a, c.env, "-C", inside)
	}
	return append(a, argv...)
}
