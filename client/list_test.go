package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestListFollowsNextLinks: a list method reads every page the server
// links to with Link rel="next", in order, and stops at the last.
func TestListFollowsNextLinks(t *testing.T) {
	pages := map[string]struct {
		ids  []string
		link string
	}{
		"":    {[]string{"m-1", "m-2"}, `</api/v1/machines?after=m-2>; rel="next"`},
		"m-2": {[]string{"m-3"}, `<{base}/api/v1/machines?after=m-3>; rel="next", </api/v1/machines>; rel="first"`},
		"m-3": {[]string{"m-4"}, ""},
	}
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := pages[r.URL.Query().Get("after")]
		if !ok || r.URL.Path != "/api/v1/machines" {
			http.NotFound(w, r)
			return
		}
		if p.link != "" {
			w.Header().Set("Link", strings.ReplaceAll(p.link, "{base}", base))
		}
		ms := []Machine{}
		for _, id := range p.ids {
			ms = append(ms, Machine{ID: id})
		}
		_ = json.NewEncoder(w).Encode(ms)
	}))
	defer srv.Close()
	base = srv.URL
	ms, err := New(srv.URL, "t").Machines(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.ID)
	}
	if want := []string{"m-1", "m-2", "m-3", "m-4"}; !slices.Equal(got, want) {
		t.Fatalf("machines = %v, want %v", got, want)
	}
}

func TestNextPage(t *testing.T) {
	cases := []struct{ base, link, want string }{
		{"http://h", "", ""},
		{"http://h", `</a?after=1>; rel="next"`, "/a?after=1"},
		{"http://h/kloud", `<http://h/kloud/a?after=1>; rel="next"`, "/a?after=1"},
		{"http://h", `</a>; rel="prev", </b?after=2>; rel="next"`, "/b?after=2"},
	}
	for _, c := range cases {
		if got := nextPage(c.base, c.link); got != c.want {
			t.Errorf("nextPage(%q, %q) = %q, want %q", c.base, c.link, got, c.want)
		}
	}
}
