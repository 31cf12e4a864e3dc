package secretmask

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"
)

func TestMask(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"raw", []string{"hunter22"}, "password is hunter22.", "password is ********."},
		{"longest first", []string{"hunter22", "xhunter22x"}, "a xhunter22x b", "a ******** b"},
		{"contained, other order", []string{"xhunter22x", "hunter22"}, "xhunter22x and hunter22", "******** and ********"},
		{"overlapping", []string{"abcdef", "defghi"}, "<abcdefghi>", "<********>"},
		{"overlapping repeats", []string{"aaaa"}, "aaaaaa", "********"},
		{"adjacent", []string{"abcd", "efgh"}, "abcdefgh", "****************"},
		{"json form", []string{`a"b\c`}, `json "a\"b\\c"`, `json "********"`},
		{"raw with quotes", []string{`a"b\c`}, `raw a"b\c`, "raw ********"},
		{"url form", []string{"p@ss word/1"}, "https://x/?p=p%40ss+word%2F1", "https://x/?p=********"},
		{"multi-line whole", []string{"line-one\nline-two"}, "line-one\nline-two", "********"},
		{"multi-line per line", []string{"line-one\nline-two"}, "  line-two", "  ********"},
		{"multi-line json", []string{"line-one\nline-two"}, `"line-one\nline-two"`, `"********"`},
		{"multi-line short line kept", []string{"line-one\nab"}, "ab cd", "ab cd"},
		{"short ignored", []string{"abc"}, "abc stays", "abc stays"},
		{"empty ignored", []string{""}, "as is", "as is"},
		{"none", nil, "as is", "as is"},
		{"no match", []string{"hunter22"}, "nothing here", "nothing here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.secrets...).Mask(tt.in); got != tt.want {
				t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewMin(t *testing.T) {
	tests := []struct {
		min      int
		in, want string
	}{
		{1, "x abc y", "x ******** y"},
		{0, "x abc y", "x ******** y"},
		{4, "x abc y", "x abc y"},
	}
	for _, tt := range tests {
		if got := NewMin(tt.min, "abc", "").Mask(tt.in); got != tt.want {
			t.Errorf("NewMin(%d).Mask(%q) = %q, want %q", tt.min, tt.in, got, tt.want)
		}
	}
}

func TestAdd(t *testing.T) {
	m := New()
	if m.Mask("token t0k3n-1") != "token t0k3n-1" || m.Len() != 0 {
		t.Fatal("an empty masker changed its input")
	}
	m.Add("t0k3n-1", "t0k3n-1")
	if got := m.Mask("token t0k3n-1"); got != "token ********" {
		t.Errorf("after Add: %q", got)
	}
	if m.Len() != 1 {
		t.Errorf("Len = %d, want 1 (one form, added twice)", m.Len())
	}
	var nilMasker *Masker
	if nilMasker.Mask("abcd") != "abcd" || nilMasker.Len() != 0 || nilMasker.MaskError(nil) != nil {
		t.Error("the nil masker changed its input")
	}
}

// TestConcurrent adds secrets while other goroutines mask (run with -race).
func TestConcurrent(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			m.Add(fmt.Sprintf("secret-%d", i))
		}()
		go func() {
			defer wg.Done()
			_ = m.Mask("secret-0 secret-1 secret-2 secret-3")
		}()
	}
	wg.Wait()
	if got := m.Mask("secret-0 secret-1 secret-2 secret-3"); got != "******** ******** ******** ********" {
		t.Errorf("Mask = %q", got)
	}
}

func TestMaskError(t *testing.T) {
	m := New("abcdef")
	base := fmt.Errorf("open: %w", fs.ErrNotExist)
	masked := m.MaskError(fmt.Errorf("token abcdef: %w", base))
	if masked.Error() != "token ********: open: file does not exist" {
		t.Errorf("MaskError = %q", masked)
	}
	if !errors.Is(masked, fs.ErrNotExist) {
		t.Error("MaskError lost the error chain")
	}
	if m.MaskError(base) != base || m.MaskError(nil) != nil {
		t.Error("MaskError changed an error without secrets")
	}
}
