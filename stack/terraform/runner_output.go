package terraform

import (
	"bytes"
	"strings"
	"sync"

	"github.com/kloud/kloud/internal/secretmask"
	"github.com/kloud/kloud/stack"
)

// maxOutputLine bounds a line kept while waiting for its newline; a longer
// one is passed on in pieces.
const maxOutputLine = 1 << 20

// envMasker masks the values of a template's secret variables in its
// run's output and errors.
func envMasker(envs ...map[string]stack.Secret) *secretmask.Masker {
	m := secretmask.New()
	for _, env := range envs {
		for _, v := range env {
			m.Add(v.Reveal())
		}
	}
	return m
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
