// Package scaffold writes a new Kloud provider: the seed's four files
// (NAME.go registering the *provider.Provider, machine.go, schema.go and
// stack.go), a test that runs the conformance suite (provider/providertest)
// and a README, into provider/NAME of a checkout, and the one import line
// that builds it into kloud. Every method of the generated provider
// answers provider.ErrNotImplemented, which the suite reports rule by rule.
package scaffold

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/kloud/kloud/provider"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// RegistrationFile is the file, relative to the module root, whose import
// lines build the providers into kloud.
const RegistrationFile = "cmd/kloud/providers.go"

// DefaultResource is the resource type suffix when none is given
// ("<name>_machine").
const DefaultResource = "machine"

// Sentinel errors: a name or resource type that cannot be used, and a
// provider that exists already.
var (
	ErrBadName = errors.New("invalid provider name")
	ErrExists  = errors.New("provider exists")
)

// Options say what to scaffold and where.
type Options struct {
	// Name is the provider's name: its Go package, its directory under
	// provider/ and the Terraform provider's local name.
	Name string
	// Resource is the machine resource type without the provider prefix
	// ("server" for acme_server); DefaultResource when empty.
	Resource string
	// Root is the module root (the directory holding go.mod).
	Root string
}

// Result is what Write did.
type Result struct {
	// Dir is the provider's directory; Files the files written in it.
	Dir   string   `json:"dir"`
	Files []string `json:"files"`
	// Registered is the file the import line was added to ("" when the
	// checkout has no RegistrationFile); Line is that line.
	Registered string `json:"registered,omitempty"`
	Line       string `json:"line"`
}

var (
	nameRe     = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	resourceRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// reserved are names that are valid Go identifiers but cannot be a
// provider: Terraform's builtin provider, and the packages under provider/
// that are not providers.
var reserved = map[string]bool{"terraform": true, "provider": true, "providertest": true, "scaffold": true}

// quote is s quoted for a message, at most 64 characters of it.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Check refuses a name that is not a lower-case Go identifier (which is
// also a Terraform local name), a Go keyword or a reserved name, a
// resource type that is not one, and a provider that is registered or
// whose directory exists under root.
func Check(o Options) error {
	switch {
	case !nameRe.MatchString(o.Name):
		return fmt.Errorf("%w %s: want a lower-case Go identifier of letters and digits, starting with a letter (it is the package, the directory and the Terraform provider's local name)", ErrBadName, quote(o.Name))
	case token.IsKeyword(o.Name):
		return fmt.Errorf("%w %s: it is a Go keyword", ErrBadName, quote(o.Name))
	case reserved[o.Name]:
		return fmt.Errorf("%w %s: the name is reserved", ErrBadName, quote(o.Name))
	case o.Resource != "" && !resourceRe.MatchString(o.Resource):
		return fmt.Errorf("%w: resource type %s: want lower-case letters, digits and _, starting with a letter (\"server\" for %s_server)", ErrBadName, quote(o.Resource), o.Name)
	}
	if _, err := provider.Get(o.Name); err == nil {
		return fmt.Errorf("%w: %q is a provider built into kloud already", ErrExists, o.Name)
	}
	dir := filepath.Join(o.Root, "provider", o.Name)
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%w: %s exists already", ErrExists, dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("scaffold provider %s: %w", o.Name, err)
	}
	return nil
}

// data is what the templates see.
type data struct {
	Name, Resource, Type, Module, Source string
}

// files maps each template to the file it writes, NAME being the
// provider's name.
var files = []struct{ tmpl, file string }{
	{"provider.go.tmpl", "NAME.go"},
	{"machine.go.tmpl", "machine.go"},
	{"schema.go.tmpl", "schema.go"},
	{"stack.go.tmpl", "stack.go"},
	{"provider_test.go.tmpl", "NAME_test.go"},
	{"README.md.tmpl", "README.md"},
}

// Write checks o, writes the provider's files into <root>/provider/<name>
// and adds its import line to the root's RegistrationFile (when the
// checkout has one). Go files are gofmt-ed.
func Write(o Options) (*Result, error) {
	if o.Resource == "" {
		o.Resource = DefaultResource
	}
	if err := Check(o); err != nil {
		return nil, err
	}
	module, err := ModulePath(o.Root)
	if err != nil {
		return nil, err
	}
	d := data{Name: o.Name, Resource: o.Resource, Type: o.Name + "_" + o.Resource, Module: module, Source: o.Name + "/" + o.Name}
	tmpl, err := template.New("scaffold").ParseFS(templateFS, "templates/*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("scaffold provider %s: %w", o.Name, err)
	}
	res := &Result{Dir: filepath.Join(o.Root, "provider", o.Name)}
	if err := os.MkdirAll(res.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("scaffold provider %s: %w", o.Name, err)
	}
	for _, f := range files {
		var buf bytes.Buffer
		if err := tmpl.ExecuteTemplate(&buf, f.tmpl, d); err != nil {
			return nil, fmt.Errorf("scaffold provider %s: %s: %w", o.Name, f.tmpl, err)
		}
		out := buf.Bytes()
		name := strings.ReplaceAll(f.file, "NAME", o.Name)
		if strings.HasSuffix(name, ".go") {
			if out, err = format.Source(out); err != nil {
				return nil, fmt.Errorf("scaffold provider %s: format %s: %w", o.Name, name, err)
			}
		}
		if err := os.WriteFile(filepath.Join(res.Dir, name), out, 0o644); err != nil {
			return nil, fmt.Errorf("scaffold provider %s: %w", o.Name, err)
		}
		res.Files = append(res.Files, filepath.Join(res.Dir, name))
	}
	res.Line = fmt.Sprintf("_ %q // %s machines", module+"/provider/"+o.Name, d.Type)
	reg := filepath.Join(o.Root, RegistrationFile)
	if _, err := os.Stat(reg); err == nil {
		if err := addImport(reg, res.Line); err != nil {
			return nil, err
		}
		res.Registered = reg
	}
	return res, nil
}

// ModulePath reads the module path from root's go.mod.
func ModulePath(root string) (string, error) {
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("read module path: %w (run in the root of a Kloud checkout, or give --dir)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("read module path: no module line in %s", filepath.Join(root, "go.mod"))
}

// addImport adds line to the last import block of the Go file at path.
func addImport(path, line string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("register provider: %w", err)
	}
	src := string(b)
	start := strings.LastIndex(src, "import (")
	if start < 0 {
		return fmt.Errorf("register provider: %s has no import block; add %s yourself", path, line)
	}
	end := strings.Index(src[start:], "\n)")
	if end < 0 {
		return fmt.Errorf("register provider: %s: unterminated import block", path)
	}
	end += start
	out, err := format.Source([]byte(src[:end] + "\n\t" + line + src[end:]))
	if err != nil {
		return fmt.Errorf("register provider: format %s: %w", path, err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("register provider: %w", err)
	}
	return nil
}
