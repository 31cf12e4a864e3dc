package kloud

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/kloud/kloud/stack/terraform"
)

func TestDiskFullCause(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, "no space left on device"},
		{fmt.Errorf("terraform apply: %w: Error: write terraform.tfstate: no space left on device", terraform.ErrTerraformFailed), "no space left on device"},
		{errors.New("commit: database or disk is full (13)"), "database or disk is full"},
		{errors.New("(OutOfDiskSpace) insufficient disk"), "the database server is out of disk space"},
		{errors.New("something else"), ""},
		{nil, ""},
	} {
		if got := diskFullCause(c.err); got != c.want {
			t.Errorf("diskFullCause(%v) = %q, want %q", c.err, got, c.want)
		}
		if c.want == "" {
			continue
		}
		if status, body := errorBody(c.err); status != 507 || !strings.Contains(body.Message, c.want) {
			t.Errorf("errorBody(%v) = %d %q, want 507 naming the cause", c.err, status, body.Message)
		}
	}
}

func TestQuoteInput(t *testing.T) {
	long := strings.Repeat("é", 5000)
	for _, c := range []struct {
		name, got, want string
	}{
		{"quote short", quote("abc"), `"abc"`},
		{"quote long", quote(long), `"` + strings.Repeat("é", 64) + `…"`},
		{"quote control", quote("a\nb"), `"a\nb"`},
		{"ident plain", ident("m-1_x.y"), "m-1_x.y"},
		{"ident space", ident("a b"), `"a b"`},
		{"ident empty", ident(""), `""`},
		{"ident long", ident(strings.Repeat("x", 65)), `"` + strings.Repeat("x", 64) + `…"`},
		{"notFound", notFound("machine", "m-1").Error(), "machine m-1: not found"},
		{"clip words", clipLongWords("bad " + strings.Repeat("y", 500) + " here"), "bad " + strings.Repeat("y", 64) + "… here"},
		{"clip words keeps short", clipLongWords("a short message"), "a short message"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}
