// Package secretmask hides secret values in text (Terraform output, errors,
// job events) before it is logged, stored or answered. It is the one masker
// of Kloud: the runner, the providers and the job engine all use it.
package secretmask

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask is what a masked secret reads as.
const Mask = "********"

// MinLen is the shortest secret a masker from New hides: masking shorter
// ones would garble every line without protecting much. Each line of a
// multi-line secret is masked on its own only from this length.
const MinLen = 4

// Masker replaces secret values, and the forms they take in text, with
// Mask. The forms of a secret are its raw value, its JSON-escaped form (as
// inside a JSON string), its URL-escaped form and, for a multi-line secret,
// each of its lines (output is read a line at a time). The longest match
// wins: one mask covers every secret inside or overlapping another, so a
// secret that contains another is masked whole, never half.
//
// A Masker is safe for concurrent use; secrets may be added while it masks.
// The nil *Masker masks nothing.
type Masker struct {
	min int

	mu    sync.Mutex
	seen  map[string]bool
	forms []string // never changed in place: Mask reads a snapshot
}

// New returns a masker of secrets that skips values shorter than MinLen.
func New(secrets ...string) *Masker { return NewMin(MinLen, secrets...) }

// NewMin returns a masker of secrets that skips values shorter than min
// (at least 1: the empty string is never a secret).
func NewMin(min int, secrets ...string) *Masker {
	m := &Masker{min: max(1, min), seen: make(map[string]bool)}
	m.Add(secrets...)
	return m
}

// Add makes m mask secrets from now on.
func (m *Masker) Add(secrets ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range secrets {
		if len(s) < m.min {
			continue
		}
		m.addForm(s, m.min)
		if b, err := json.Marshal(s); err == nil {
			m.addForm(string(b[1:len(b)-1]), m.min)
		}
		m.addForm(url.QueryEscape(s), m.min)
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				m.addForm(line, max(m.min, MinLen))
			}
		}
	}
}

func (m *Masker) addForm(s string, min int) {
	if len(s) < min || m.seen[s] {
		return
	}
	m.seen[s] = true
	m.forms = append(m.forms[:len(m.forms):len(m.forms)], s)
}

// Len returns how many forms of secrets m masks.
func (m *Masker) Len() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.forms)
}

// Mask returns s with every secret replaced by Mask. Where secrets overlap
// or one contains another, the whole stretch they cover is one mask, so no
// part of either shows.
func (m *Masker) Mask(s string) string {
	if m == nil || s == "" {
		return s
	}
	m.mu.Lock()
	forms := m.forms
	m.mu.Unlock()
	var spans [][2]int
	for _, f := range forms {
		for from := 0; from < len(s); {
			i := strings.Index(s[from:], f)
			if i < 0 {
				break
			}
			spans = append(spans, [2]int{from + i, from + i + len(f)})
			from += i + 1
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return a[0] - b[0] })
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for i := 0; i < len(spans); {
		start, end := spans[i][0], spans[i][1]
		for i++; i < len(spans) && spans[i][0] < end; i++ {
			end = max(end, spans[i][1])
		}
		b.WriteString(s[pos:start])
		b.WriteString(Mask)
		pos = end
	}
	b.WriteString(s[pos:])
	return b.String()
}

// MaskError returns err with its message masked; errors.Is and errors.As
// still see the original chain. An error without secrets is returned as is.
func (m *Masker) MaskError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := m.Mask(msg)
	if masked == msg {
		return err
	}
	return &maskedError{msg: masked, err: err}
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }
