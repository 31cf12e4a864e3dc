package kloud

import (
	"strings"
	"testing"
)

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
