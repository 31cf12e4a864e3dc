package terraform

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// lockCacheName is the runner's dependency lock file of every provider an
// init has locked so far, kept in the work root (never seen by Terraform).
const lockCacheName = ".terraform.lock.hcl.cache"

// lockHeader starts every lock file Terraform writes.
const lockHeader = "# This file is maintained automatically by \"terraform init\".\n# Manual edits may be lost in future updates.\n"

// lockBlocks splits a dependency lock file into its provider blocks, by
// provider address. A file it cannot read gives none.
func lockBlocks(src []byte) map[string]string {
	f, diags := hclsyntax.ParseConfig(src, lockFileName, hcl.InitialPos)
	if diags.HasErrors() {
		return nil
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	out := make(map[string]string)
	for _, b := range body.Blocks {
		if b.Type != "provider" || len(b.Labels) != 1 {
			continue
		}
		r := b.Range()
		out[b.Labels[0]] = string(src[r.Start.Byte:r.End.Byte])
	}
	return out
}

// seedLockFile writes a dependency lock file into a working directory that
// has none, holding the cached lock of each provider the template names, so
// that init installs from the mirror quietly instead of printing why it had
// to compute checksums itself. Init still checks and, if need be, rewrites
// it; a lock that no longer fits is retried without (see init).
func (s *session) seedLockFile() {
	lock := filepath.Join(s.dir, lockFileName)
	if _, err := os.Stat(lock); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	s.r.lockMu.Lock()
	cached, err := os.ReadFile(filepath.Join(s.r.cfg.WorkRoot, lockCacheName))
	s.r.lockMu.Unlock()
	if err != nil {
		return
	}
	blocks := lockBlocks(cached)
	t := s.run.Template
	var b strings.Builder
	for _, addr := range slices.Sorted(maps.Keys(blocks)) {
		named := strings.Contains(t.Content, addr)
		for _, g := range t.Generated {
			named = named || strings.Contains(string(g), addr)
		}
		if named {
			b.WriteString("\n" + blocks[addr] + "\n")
		}
	}
	if b.Len() == 0 {
		return
	}
	_ = os.WriteFile(lock, []byte(lockHeader+b.String()), 0o600)
}

// rememberLockFile adds the providers a successful init locked to the
// runner's cache.
func (s *session) rememberLockFile() {
	path := filepath.Join(s.dir, lockFileName)
	// Terraform gives the lock file mode 0644 whatever the umask.
	_ = os.Chmod(path, 0o600)
	src, err := os.ReadFile(path)
	if err != nil {
		return
	}
	fresh := lockBlocks(src)
	if len(fresh) == 0 {
		return
	}
	s.r.lockMu.Lock()
	defer s.r.lockMu.Unlock()
	path = filepath.Join(s.r.cfg.WorkRoot, lockCacheName)
	old, _ := os.ReadFile(path)
	blocks := lockBlocks(old)
	if blocks == nil {
		blocks = make(map[string]string)
	}
	changed := false
	for addr, blk := range fresh {
		if blocks[addr] != blk {
			blocks[addr], changed = blk, true
		}
	}
	if !changed {
		return
	}
	var b strings.Builder
	b.WriteString(lockHeader)
	for _, addr := range slices.Sorted(maps.Keys(blocks)) {
		b.WriteString("\n" + blocks[addr] + "\n")
	}
	_ = writeFileAtomic(path, []byte(b.String()))
}
