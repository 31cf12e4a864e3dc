package templates

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/kloud/kloud/stack"
)

// files holds one directory per provider: main.tf is its example stack,
// bootstrap.tf.json (or bootstrap.tf) its bootstrap template. Every
// provider directory's Terraform files are embedded.
//
//go:embed */*.tf */*.tf.json
var files embed.FS

// ErrNotFound is returned for a provider without the requested template.
var ErrNotFound = errors.New("template not found")

// Example returns the example stack template (HCL) of provider.
func Example(provider string) ([]byte, error) {
	b, err := read(provider, "main.tf")
	if err != nil {
		return nil, fmt.Errorf("example template of %q: %w", provider, err)
	}
	return b, nil
}

// Bootstrap returns the bootstrap template of provider and its format.
func Bootstrap(provider string) ([]byte, stack.Format, error) {
	if b, err := read(provider, "bootstrap.tf.json"); err == nil {
		return b, stack.FormatJSON, nil
	}
	b, err := read(provider, "bootstrap.tf")
	if err != nil {
		return nil, "", fmt.Errorf("bootstrap template of %q: %w", provider, err)
	}
	return b, stack.FormatHCL, nil
}

// Providers lists the providers with embedded templates.
func Providers() []string {
	entries, _ := fs.ReadDir(files, ".") // the embedded root always reads
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func read(provider, name string) ([]byte, error) {
	if provider == "" || !fs.ValidPath(provider) || path.Base(provider) != provider {
		return nil, ErrNotFound
	}
	b, err := files.ReadFile(provider + "/" + name)
	if err != nil {
		return nil, ErrNotFound
	}
	return b, nil
}
