package sqlite

import (
	"context"
	"fmt"
	"testing"
)

// TestPrepared: queries answer the same whether their statement is kept,
// is one past the bound, fails to prepare, or comes after Close.
func TestPrepared(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	p := newPrepared(s.r)
	count := func(query string) (int, error) {
		var n int
		err := p.QueryRowContext(ctx, query).Scan(&n)
		return n, err
	}
	for i := range maxPrepared + 3 {
		q := fmt.Sprintf("SELECT %d", i)
		if n, err := count(q); err != nil || n != i {
			t.Fatalf("%s: %d, %v", q, n, err)
		}
		if n, err := count(q); err != nil || n != i {
			t.Fatalf("%s again: %d, %v", q, n, err)
		}
	}
	if len(p.m) != maxPrepared {
		t.Errorf("%d statements kept, want %d", len(p.m), maxPrepared)
	}
	rows, err := p.QueryContext(ctx, "SELECT 7 UNION ALL SELECT 8")
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if err := rows.Close(); err != nil || got != 15 {
		t.Errorf("rows past the bound: sum %d, %v; want 15", got, err)
	}
	if _, err := count("SELECT nope FROM nowhere"); err == nil {
		t.Error("a query that does not prepare answered no error")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := count("SELECT 1"); err != nil || n != 1 {
		t.Errorf("after Close: %d, %v", n, err)
	}
	if len(p.m) != 0 {
		t.Errorf("after Close: %d statements kept", len(p.m))
	}
}
