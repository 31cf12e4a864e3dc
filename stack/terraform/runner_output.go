package terraform

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"sync"

	"github.com/kloud/kloud/stack"
)

// minMaskedSecret is the shortest secret value masked in Terraform's output:
// masking shorter ones would garble every line without protecting much.
const minMaskedSecret = 4

// maxOutputLine bounds a line kept while waiting for its newline; a longer
// one is passed on in pieces.
const maxOutputLine = 1 << 20

// secretMasker replaces the values of a template's secret variables, and
// their JSON-escaped and per-line forms, with a mask.
type secretMasker struct {
	rep *strings.Replacer
}

func newSecretMasker(env map[string]stack.Secret) *secretMasker {
	seen := map[string]bool{}
	var olds []string
	add := func(s string) {
		if len(s) >= minMaskedSecret && !seen[s] {
			seen[s] = true
			olds = append(olds, s)
		}
	}
	for _, v := range env {
		s := v.Reveal()
		add(s)
		if b, err := json.Marshal(s); err == nil {
			add(string(b[1 : len(b)-1]))
		}
		// Output is split into lines, so a multi-line secret shows up a
		// line at a time.
		if strings.ContainsAny(s, "\r\n") {
			for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				add(part)
			}
		}
	}
	if len(olds) == 0 {
		return &secretMasker{}
	}
	// The longest first, so a secret containing another is masked whole.
	sort.Slice(olds, func(i, j int) bool {
		if len(olds[i]) != len(olds[j]) {
			return len(olds[i]) > len(olds[j])
		}
		return olds[i] < olds[j]
	})
	pairs := make([]string, 0, 2*len(olds))
	for _, o := range olds {
		pairs = append(pairs, o, stack.SecretMask)
	}
	return &secretMasker{rep: strings.NewReplacer(pairs...)}
}

func (m *secretMasker) mask(s string) string {
	if m == nil || m.rep == nil {
		return s
	}
	return m.rep.Replace(s)
}

// lineSink receives the lines of a run's stdout and stderr, masks them and
// passes them on one at a time.
type lineSink struct {
	mu   sync.Mutex
	emit func(string)
	mask func(string) string
}

func (s *lineSink) line(l string) {
	if s.emit == nil {
		return
	}
	l = s.mask(l)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emit(l)
}

// lineWriter splits what is written to it into lines for a lineSink. It is
// an io.Writer for tfexec's SetStdout and SetStderr.
type lineWriter struct {
	sink *lineSink
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.sink.line(strings.TrimSuffix(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxOutputLine {
		w.sink.line(string(w.buf))
		w.buf = w.buf[:0]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large buffer go
	}
	return len(p), nil
}

// Flush passes on a last line that had no newline.
func (w *lineWriter) Flush() {
	if len(w.buf) > 0 {
		w.sink.line(strings.TrimSuffix(string(w.buf), "\r"))
	}
	w.buf = nil
}
