package terraform

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kloud/kloud/internal/confine"
)

// confinedScriptName is the script tfexec runs in place of Terraform when
// runs are confined; confineInfoDir holds, per running key, the pid of the
// confined Terraform (root-only: the confined user cannot redirect
// signals by rewriting it).
const (
	confinedScriptName = ".terraform-confined.sh"
	privateScriptName  = ".terraform-private.sh"
	confineInfoDir     = ".confine"
	dirMarker          = "\x00KLOUD-WORK-DIR\x00"
)

// writeConfinedTerraform writes the script that runs Terraform confined in
// the working directory it is started in, and returns its path.
//
// bubblewrap does not forward signals, so the script does: tfexec
// interrupts it on cancel, and it passes the interrupt to Terraform, which
// runs as the first process of its PID namespace and saves its state. A
// kill of the script's process group (after the grace period) kills
// bubblewrap, and with it everything inside (--die-with-parent).
func (r *Runner) writeConfinedTerraform() (string, error) {
	infoDir := filepath.Join(r.cfg.WorkRoot, confineInfoDir)
	if err := os.MkdirAll(infoDir, 0o700); err != nil {
		return "", fmt.Errorf("write confined terraform: %w", err)
	}
	binds := []confine.Bind{
		{Src: r.tfPath, ReadOnly: true},
		{Src: r.cliConfig, ReadOnly: true},
	}
	if r.cfg.PluginDir != "" {
		binds = append(binds, confine.Bind{Src: r.cfg.PluginDir, ReadOnly: true})
	}
	// The working directory is known only when the script runs: build the
	// command for a stand-in below the work root and put "$dir" in its
	// place.
	placeholder := r.cfg.WorkRoot + "/" + dirMarker
	argv := r.cfg.Confiner.Command(confine.Spec{
		Dir:           placeholder,
		Binds:         binds,
		DieWithParent: true,
		InfoFD:        3,
		Hostname:      "kloud-terraform",
	}, []string{r.tfPath})
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("# Written by Kloud's Terraform runner: runs Terraform confined by bubblewrap\n")
	b.WriteString("# in the working directory it is started in. Do not edit.\n")
	b.WriteString("umask 077\n")
	b.WriteString("dir=$(pwd -P) || exit 125\n")
	fmt.Fprintf(&b, "case \"$dir\" in %s/*/*|%s) echo \"kloud: $dir is not a working directory of this runner\" >&2; exit 125;; %s/*) ;; *) echo \"kloud: $dir is not a working directory of this runner\" >&2; exit 125;; esac\n",
		shellQuote(r.cfg.WorkRoot), shellQuote(r.cfg.WorkRoot), shellQuote(r.cfg.WorkRoot))
	fmt.Fprintf(&b, "info=%s/\"${dir##*/}.json\"\n", shellQuote(infoDir))
	b.WriteString("rm -f \"$info\"\n")
	for i, a := range argv {
		if i > 0 {
			b.WriteString(" \\\n  ")
		}
		b.WriteString(scriptArg(a, placeholder))
	}
	b.WriteString(" \"$@\" 3>\"$info\" &\n")
	b.WriteString(`pid=$!
fwd() {
  child=$(sed -n 's/.*"child-pid": *\([0-9][0-9]*\).*/\1/p' "$info" 2>/dev/null)
  if [ -n "$child" ]; then kill -"$1" "$child" 2>/dev/null; else kill -"$1" "$pid" 2>/dev/null; fi
}
trap 'fwd INT' INT
trap 'fwd TERM' TERM
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
rm -f "$info"
exit "$rc"
`)
	path := filepath.Join(r.cfg.WorkRoot, confinedScriptName)
	if err := writeFileAtomic(path, []byte(b.String())); err != nil {
		return "", fmt.Errorf("write confined terraform: %w", err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return "", fmt.Errorf("write confined terraform: %w", err)
	}
	return path, nil
}

// writePrivateTerraform writes the script that runs Terraform unconfined
// but with umask 077, so what it writes in the data dir is private whatever
// the server's own umask, and returns its path.
func (r *Runner) writePrivateTerraform() (string, error) {
	script := "#!/bin/sh\n# Written by Kloud's Terraform runner: Terraform with private files. Do not edit.\numask 077\nexec " + shellQuote(r.tfPath) + " \"$@\"\n"
	path := filepath.Join(r.cfg.WorkRoot, privateScriptName)
	if err := writeFileAtomic(path, []byte(script)); err != nil {
		return "", fmt.Errorf("write terraform script: %w", err)
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return "", fmt.Errorf("write terraform script: %w", err)
	}
	return path, nil
}

// scriptArg quotes one argument for the script, with the working directory
// placeholder replaced by "$dir".
func scriptArg(a, placeholder string) string {
	if !strings.Contains(a, placeholder) {
		return shellQuote(a)
	}
	parts := strings.Split(a, placeholder)
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteString(`"$dir"`)
		}
		if p != "" {
			b.WriteString(shellQuote(p))
		}
	}
	return b.String()
}

// shellQuote quotes s for sh in single quotes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
