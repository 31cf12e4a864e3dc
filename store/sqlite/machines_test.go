package sqlite

import (
	"testing"

	"github.com/kloud/kloud/machinestate"
)

func TestDecodeHistory(t *testing.T) {
	// Out of order (as a planner change could yield), a reason with spaces
	// and multi-byte characters, and an empty reason last.
	packed := "6 300 9 16 agent silent ×2 4 100 3 0  4 300 7 0  -1 -5 1 2 ab 6 100 2 0 "
	recs, err := decodeHistory(nil, []byte(packed))
	if err != nil {
		t.Fatal(err)
	}
	want := []packedRecord{
		{state: -1, at: -5, id: 1, reason: "ab"},
		{state: machinestate.Stopped, at: 100, id: 2},
		{state: machinestate.Running, at: 100, id: 3},
		{state: machinestate.Running, at: 300, id: 7},
		{state: machinestate.Stopped, at: 300, id: 9, reason: "agent silent ×2"},
	}
	if len(recs) != len(want) {
		t.Fatalf("decoded %+v, want %+v", recs, want)
	}
	for i := range want {
		if recs[i] != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, recs[i], want[i])
		}
	}
	for _, bad := range []string{"4", "4 100", "4 100 1", "4 100 1 5 ab", "x 100 1 0 ", "4 100 1 2 abX4 1 1 0 ", "4 1000000000000000000000 1 0 "} {
		if _, err := decodeHistory(nil, []byte(bad)); err == nil {
			t.Errorf("decodeHistory(%q) succeeded", bad)
		}
	}
}
