package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kloud/kloud/internal/testenv"
	"github.com/kloud/kloud/kloud/notify"
	"github.com/kloud/kloud/store"
	"github.com/kloud/kloud/store/sqlite"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func openStore(t *testing.T, clock func() time.Time) store.Store {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.WithLogger(quiet), sqlite.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// receiver answers the statuses given in turn (200 once they run out) and
// keeps what it received.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	sigs     []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, b)
	r.sigs = append(r.sigs, req.Header.Get(notify.SignatureHeader))
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	w.WriteHeader(status)
}

// TestRetriesUntilDelivered: a receiver that answers 500 twice gets the
// event on the third try, after the backoff each time; every body is
// signed with the webhook's secret, and the delivery log shows all three
// attempts. A receiver that never answers 2xx is given up after an hour.
func TestRetriesUntilDelivered(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int
		wantStatus   string
		wantAttempts int
	}{
		{"500 twice, then delivered", []int{500, 500}, store.DeliveryDelivered, 3},
		{"delivered at once", nil, store.DeliveryDelivered, 1},
		{"never: failed after an hour", repeat(503, 100), store.DeliveryFailed, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			clock := testenv.NewFakeClock(t0)
			st := openStore(t, clock.Now)
			rcv := &receiver{statuses: tt.statuses}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			hook := &store.Webhook{OwnerID: "usr-1", URL: srv.URL + "/hook", Events: []string{notify.BudgetWarned}, Secret: "topsecret"}
			if err := st.CreateWebhook(ctx, hook); err != nil {
				t.Fatal(err)
			}
			n := notify.New(notify.Config{Store: st, Now: clock.Now, Backoff: 10 * time.Second})
			sent, err := n.Notify(ctx, notify.Event{Event: notify.BudgetWarned, OwnerID: "usr-1", Data: map[string]any{"scope": "user:usr-1"}})
			if err != nil || sent != 1 {
				t.Fatalf("notify = %d, %v; want one delivery", sent, err)
			}
			// Other events and other owners' events do not reach it.
			if sent, _ := n.Notify(ctx, notify.Event{Event: notify.JobFailed, OwnerID: "usr-1"}); sent != 0 {
				t.Errorf("an event the webhook did not ask for made %d deliveries", sent)
			}
			if sent, _ := n.Notify(ctx, notify.Event{Event: notify.BudgetWarned, OwnerID: "usr-2"}); sent != 0 {
				t.Errorf("another member's event made %d deliveries", sent)
			}
			for range 200 {
				if _, err := n.DeliverDue(ctx); err != nil {
					t.Fatal(err)
				}
				ds, err := st.ListDeliveries(ctx, hook.ID, 0)
				if err != nil {
					t.Fatal(err)
				}
				if ds[0].Status != store.DeliveryPending {
					break
				}
				// Nothing is due before the backoff has passed.
				if tried, _ := n.DeliverDue(ctx); tried != 0 {
					t.Fatalf("a delivery was tried again before its backoff")
				}
				clock.Set(ds[0].NextAt)
			}
			ds, err := st.ListDeliveries(ctx, hook.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			d := ds[0]
			if d.Status != tt.wantStatus || len(d.Attempts) != tt.wantAttempts {
				t.Fatalf("delivery %s with %d attempts, want %s with %d: %+v", d.Status, len(d.Attempts), tt.wantStatus, tt.wantAttempts, d.Attempts)
			}
			last := d.Attempts[len(d.Attempts)-1]
			if last.At.After(d.CreatedAt.Add(time.Hour)) {
				t.Errorf("last attempt at %v, more than an hour after the event", last.At)
			}
			for i := 1; i < len(d.Attempts); i++ {
				if gap := d.Attempts[i].At.Sub(d.Attempts[i-1].At); gap < 10*time.Second {
					t.Errorf("attempt %d came %v after the one before, want the backoff", i, gap)
				}
			}
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if len(rcv.bodies) != tt.wantAttempts {
				t.Errorf("receiver got %d requests, want %d", len(rcv.bodies), tt.wantAttempts)
			}
			for i, b := range rcv.bodies {
				if !notify.Verify("topsecret", b, rcv.sigs[i]) {
					t.Errorf("request %d: signature %q does not verify", i, rcv.sigs[i])
				}
				var ev notify.Event
				if err := json.Unmarshal(b, &ev); err != nil || ev.Event != notify.BudgetWarned || ev.Data["scope"] != "user:usr-1" {
					t.Errorf("request %d body %s: %v", i, b, err)
				}
			}
		})
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}
