package kloud

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Every list endpoint pages: ?limit (default defaultLimit, at most
// maxLimit) and ?after (the opaque cursor of a previous page's Link). The
// body stays a JSON array; the next page, when there may be one, is in a
// `Link: <…>; rel="next"` header, as GitHub does.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// listQuery is a list request read by parseList: its page and its filters.
type listQuery struct {
	Limit int
	// After is the key of the last item of the previous page ("" for the
	// first page), decoded from the cursor.
	After  string
	values url.Values
}

// Get returns a filter's value ("" when not given).
func (l listQuery) Get(name string) string { return l.values.Get(name) }

// parseList reads ?limit and ?after and the filters a list takes; any
// other query parameter is a 400 naming it, so a misspelt filter is never
// silently ignored.
func parseList(r *http.Request, filters ...string) (listQuery, error) {
	q := r.URL.Query()
	l := listQuery{Limit: defaultLimit, values: q}
	var unknown []string
	for k := range q {
		if k != "limit" && k != "after" && !slices.Contains(filters, k) {
			unknown = append(unknown, quote(k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		if len(unknown) > 5 {
			unknown = append(unknown[:5], "…")
		}
		allowed := append([]string{"limit", "after"}, filters...)
		return l, badRequest(strings.Trim(unknown[0], `"`), "unknown query parameter %s; allowed: %s",
			strings.Join(unknown, ", "), strings.Join(allowed, ", "))
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return l, badRequest("limit", "limit %s: want an integer from 1 to %d", quote(v), maxLimit)
		}
		l.Limit = n
	}
	if v := q.Get("after"); v != "" {
		key, err := decodeCursor(v)
		if err != nil {
			return l, badRequest("after", "after %s is not a cursor this server gave", quote(v))
		}
		l.After = key
	}
	return l, nil
}

// cursorPrefix versions the cursor's encoding.
const cursorPrefix = "k1:"

func encodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + key))
}

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", err
	}
	key, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return "", fmt.Errorf("cursor without its prefix")
	}
	return key, nil
}

// setNextLink sets the Link header to the page after the item keyed last,
// keeping the request's filters and limit.
func setNextLink(w http.ResponseWriter, r *http.Request, last string) {
	q := r.URL.Query()
	q.Set("after", encodeCursor(last))
	w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
}

// pageOf cuts items, already in the order of their keys, to the page l
// asks for: the items whose key sorts after l.After, at most l.Limit. last
// is the key of the page's last item when more items follow, else "".
func pageOf[T any](items []T, l listQuery, key func(int, T) string) (page []T, last string) {
	start := 0
	if l.After != "" {
		start = sort.Search(len(items), func(i int) bool { return key(i, items[i]) > l.After })
	}
	end := min(len(items), start+l.Limit)
	page = items[start:end]
	if end < len(items) && end > start {
		last = key(end-1, items[end-1])
	}
	return page, last
}

// listPage answers one page of a list the store answers whole: the items
// (in their API form, view) of the page l asks for, never null, and the
// Link to the next page when more follow. key is an item's key, which must
// sort as items are ordered (createdKey, positionKey, an id). It is the
// one list answer of the API: a new list endpoint calls parseList, then
// listPage (or pages in its store, as machines do, and calls setNextLink).
func listPage[T, V any](s *Server, w http.ResponseWriter, r *http.Request, l listQuery, items []T, err error, key func(int, T) string, view func(T) V) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, last := pageOf(items, l, key)
	out := make([]V, 0, len(page))
	for _, it := range page {
		out = append(out, view(it))
	}
	if last != "" {
		setNextLink(w, r, last)
	}
	writeJSON(w, http.StatusOK, out)
}

// createdKey is the key of lists ordered by creation time, then id.
func createdKey(created time.Time, id string) string {
	return fmt.Sprintf("%020d/%s", created.UnixNano(), id)
}

// positionKey is the key of lists in an order no field carries (rules in
// the order they were made, modules by priority): the position.
func positionKey[T any](i int, _ T) string { return fmt.Sprintf("%08d", i) }

// asIs is the view of items already in their API form.
func asIs[T any](v T) T { return v }
