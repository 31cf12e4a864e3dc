package writer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kloud/kloud/store"
)

// Report is a report file as the API lists it.
type Report struct {
	Name    string    `json:"name"` // "<scope>-<YYYY-MM>.<format>"
	Scope   string    `json:"scope"`
	Month   string    `json:"month"`
	Format  string    `json:"format"` // "csv" or "json"
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modified_at"`
}

// ContentType is the report's media type.
func (r Report) ContentType() string {
	if r.Format == "json" {
		return "application/json"
	}
	return "text/csv; charset=utf-8"
}

var (
	nameRE = regexp.MustCompile(`^(.+)-(\d{4}-(?:0[1-9]|1[0-2]))\.(csv|json)$`)
	fileRE = regexp.MustCompile(`^(\d{4}-(?:0[1-9]|1[0-2]))\.(csv|json)$`)
)

// ValidScope checks that a scope can name a directory: not empty, at most
// 200 bytes, no path separator, NUL or leading dot.
func ValidScope(scope string) error {
	switch {
	case scope == "":
		return &invalidError{"scope", "empty"}
	case len(scope) > 200:
		return &invalidError{"scope", "longer than 200 bytes"}
	case strings.ContainsAny(scope, "/\\\x00"):
		return &invalidError{"scope", "contains a path separator or NUL"}
	case strings.HasPrefix(scope, "."):
		return &invalidError{"scope", "starts with a dot"}
	}
	return nil
}

type invalidError struct{ field, reason string }

func (e *invalidError) Error() string { return e.field + ": " + e.reason }
func (e *invalidError) Unwrap() error { return store.ErrInvalid }

// ParseReportName splits "<scope>-<YYYY-MM>.<csv|json>". A malformed name,
// or one whose scope could leave the reports directory, matches
// store.ErrInvalid.
func ParseReportName(name string) (scope, month, format string, err error) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return "", "", "", fmt.Errorf("report %q: %w", name, &invalidError{"name", "want <scope>-<YYYY-MM>.csv or .json"})
	}
	if err := ValidScope(m[1]); err != nil {
		return "", "", "", fmt.Errorf("report %q: %w", name, err)
	}
	return m[1], m[2], m[3], nil
}

// ReportName is the name of a scope's report of a month in a format.
func ReportName(scope, month, format string) string { return scope + "-" + month + "." + format }

// ListReports lists the reports under dir, sorted by name; an absent dir
// has none.
func ListReports(dir string) ([]Report, error) {
	scopes, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Report{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	out := []Report{}
	for _, s := range scopes {
		if !s.IsDir() || ValidScope(s.Name()) != nil {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, s.Name()))
		if err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		for _, f := range files {
			m := fileRE.FindStringSubmatch(f.Name())
			if m == nil || !f.Type().IsRegular() {
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out = append(out, Report{Name: ReportName(s.Name(), m[1], m[2]), Scope: s.Name(), Month: m[1], Format: m[2],
				Size: info.Size(), ModTime: info.ModTime().UTC()})
		}
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// OpenReport opens a report by name for reading; the caller closes it. The
// file is opened through an os.Root on dir, so neither the name nor a
// symbolic link can reach outside it. A missing report matches
// store.ErrNotFound, a bad name store.ErrInvalid.
func OpenReport(dir, name string) (*os.File, Report, error) {
	scope, month, format, err := ParseReportName(name)
	if err != nil {
		return nil, Report{}, err
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Report{}, fmt.Errorf("report %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, Report{}, fmt.Errorf("open report %s: %w", name, err)
	}
	defer root.Close()
	f, err := root.Open(filepath.Join(scope, month+"."+format))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Report{}, fmt.Errorf("report %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, Report{}, fmt.Errorf("open report %s: %w", name, err)
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, Report{}, fmt.Errorf("report %s: %w", name, store.ErrNotFound)
	}
	return f, Report{Name: name, Scope: scope, Month: month, Format: format, Size: info.Size(), ModTime: info.ModTime().UTC()}, nil
}
