package kloud

import (
	"testing"
	"time"
)

// TestScheduleFirings: the last firing of each expression in a window, in
// the schedule's zone, decides what a pass does.
func TestScheduleFirings(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := parseSchedule("0 8 * * 1-5", "0 19 * * 1-5", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	thu := func(h, m int) time.Time { return time.Date(2026, 12, 3, h, m, 0, 0, berlin) } // a Thursday
	tests := []struct {
		name            string
		since, now      time.Time
		wantStart, stop time.Time
	}{
		{"nothing due", thu(9, 0), thu(18, 59), time.Time{}, time.Time{}},
		{"the stop at 19:00 Berlin", thu(18, 59), thu(19, 0), time.Time{}, thu(19, 0)},
		{"overnight: the stop only", thu(18, 0), thu(23, 0), time.Time{}, thu(19, 0)},
		{"to Friday 8:01: both, the start last", thu(18, 0), thu(8, 1).AddDate(0, 0, 1), thu(8, 0).AddDate(0, 0, 1), thu(19, 0)},
		{"the weekend fires nothing", thu(20, 0).AddDate(0, 0, 1), thu(7, 0).AddDate(0, 0, 4), time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, stop := cs.last(cs.start, tt.since, tt.now), cs.last(cs.stop, tt.since, tt.now)
			if !start.Equal(tt.wantStart) || !stop.Equal(tt.stop) {
				t.Errorf("start %v stop %v, want %v and %v", start, stop, tt.wantStart, tt.stop)
			}
		})
	}
	if n := cs.next(cs.stop, thu(19, 0)); !n.Equal(thu(19, 0).AddDate(0, 0, 1)) {
		t.Errorf("next stop after Thursday 19:00 = %v, want Friday 19:00", n.In(berlin))
	}
	for _, bad := range [][3]string{{"0 8 * *", "", "UTC"}, {"", "", "UTC"}, {"0 8 * * *", "", "Mars/Olympus"}, {"", "61 * * * *", "UTC"}} {
		if _, err := parseSchedule(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("parseSchedule(%q) accepted", bad)
		}
	}
}
