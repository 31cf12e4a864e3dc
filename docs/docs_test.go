package docs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kloud/kloud/internal/testenv"
)

// TestProvidersGuideCompiles type-checks every Go block of providers.md.
func TestProvidersGuideCompiles(t *testing.T) {
	n := checkGoBlocks(t, "providers.md")
	if n < 5 {
		t.Errorf("providers.md has %d Go blocks; the guide's example provider is gone", n)
	}
}

// goBlocks reads the Go blocks of the guide name.
func goBlocks(t *testing.T, name string) []Block {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := GoBlocks(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return blocks
}

// checkGoBlocks type-checks the Go blocks of the guide name, the blocks of
// one directory as one package (whose import path is the module's path
// and the directory), against this module's packages. Errors are reported
// at the guide's lines. It returns the number of blocks.
func checkGoBlocks(t *testing.T, name string) int {
	t.Helper()
	blocks := goBlocks(t, name)
	root := testenv.RepoRoot(t)
	module := modulePath(t, root)
	fset := token.NewFileSet()
	files := map[string][]*ast.File{} // by import path
	for _, b := range blocks {
		// Leading newlines put the file's lines at the guide's.
		src := strings.Repeat("\n", b.Line-1) + b.Code
		f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		ip := module + "/" + path.Dir(b.Path)
		files[ip] = append(files[ip], f)
	}
	if t.Failed() {
		return len(blocks)
	}
	external := map[string]bool{}
	for _, fs := range files {
		for _, f := range fs {
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if _, ok := files[p]; !ok {
					external[p] = true
				}
			}
		}
	}
	exports := exportData(t, root, slices.Sorted(func(yield func(string) bool) {
		for p := range external {
			if !yield(p) {
				return
			}
		}
	}))
	imp := &docImporter{
		docs: map[string]*types.Package{},
		gc: importer.ForCompiler(fset, "gc", func(p string) (io.ReadCloser, error) {
			file, ok := exports[p]
			if !ok {
				return nil, fmt.Errorf("no export data for %s", p)
			}
			return os.Open(file)
		}),
	}
	// Check the doc packages in import order.
	for len(imp.docs) < len(files) {
		progress := false
		for _, ip := range slices.Sorted(func(yield func(string) bool) {
			for p := range files {
				if !yield(p) {
					return
				}
			}
		}) {
			if _, done := imp.docs[ip]; done || !imp.ready(ip, files) {
				continue
			}
			conf := types.Config{Importer: imp, Error: func(err error) { t.Errorf("%v", err) }}
			pkg, _ := conf.Check(ip, fset, files[ip], nil)
			imp.docs[ip] = pkg
			progress = true
		}
		if !progress {
			t.Fatalf("%s: the Go blocks' packages import each other in a cycle", name)
		}
	}
	return len(blocks)
}

// docImporter imports the guide's own packages, then the module's and the
// standard library's from their export data.
type docImporter struct {
	docs map[string]*types.Package
	gc   types.Importer
}

func (d *docImporter) Import(p string) (*types.Package, error) {
	if pkg, ok := d.docs[p]; ok {
		return pkg, nil
	}
	return d.gc.Import(p)
}

// ready reports whether every doc package ip imports is checked.
func (d *docImporter) ready(ip string, files map[string][]*ast.File) bool {
	for _, f := range files[ip] {
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if _, isDoc := files[p]; isDoc {
				if _, done := d.docs[p]; !done {
					return false
				}
			}
		}
	}
	return true
}

// exportData compiles pkgs and their dependencies (go list -export) and
// returns each package's export data file.
func exportData(t *testing.T, root string, pkgs []string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-export", "-deps", "-json=ImportPath,Export", "--"}, pkgs...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.Bytes())
	}
	exports := map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -export: %v", err)
		}
		exports[p.ImportPath] = p.Export
	}
	return exports
}

func modulePath(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(root + "/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatal("no module line in go.mod")
	return ""
}
