package ratingbridge

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/ratingbridge/internal/fake"
	"github.com/kloud/kloud/stack"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// at is t0 plus a duration written like "1h30m".
func at(d string) time.Time {
	dur, err := time.ParseDuration(d)
	if err != nil {
		panic(err)
	}
	return t0.Add(dur)
}

type rec struct {
	at    string
	state machinestate.State
}

const (
	running  = machinestate.Running
	stopped  = machinestate.Stopped
	starting = machinestate.Starting
	stopping = machinestate.Stopping
	building = machinestate.Building
)

func history(id string, rs ...rec) []stack.StateRecord {
	out := make([]stack.StateRecord, len(rs))
	for i, r := range rs {
		out[i] = stack.StateRecord{MachineID: id, State: r.state, At: at(r.at)}
	}
	return out
}

func TestPeriodStart(t *testing.T) {
	for _, tc := range []struct {
		t      time.Time
		period time.Duration
		want   time.Time
	}{
		{at("0s"), time.Hour, at("0s")},
		{at("59m59s"), time.Hour, at("0s")},
		{at("1h"), time.Hour, at("1h")},
		{at("1h30m"), 15 * time.Minute, at("1h30m")},
		{at("1h44m"), 15 * time.Minute, at("1h30m")},
		{at("13h"), 24 * time.Hour, at("0s")},
		{time.Date(1969, 12, 31, 23, 30, 0, 0, time.UTC), time.Hour, time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC)},
		{time.Date(2025, 1, 1, 5, 0, 0, 0, time.FixedZone("x", 3600)), time.Hour, at("4h")},
	} {
		if got := PeriodStart(tc.t, tc.period); !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("PeriodStart(%s, %s) = %s, want %s", tc.t, tc.period, got, tc.want)
		}
	}
}

func TestCollectUptime(t *testing.T) {
	cases := []struct {
		name string
		recs []rec
		want string // qty of the point; "" for no point
	}{
		{"running the whole period", []rec{{"-3h", running}}, "1"},
		{"started inside", []rec{{"-3h", stopped}, {"10m", running}}, "0.833333333"},
		{"started and stopped inside", []rec{{"20m", running}, {"35m", stopped}}, "0.25"},
		{"stopped before the period", []rec{{"-2h", running}, {"-1h", stopped}}, ""},
		{"still running at the end counts to the end", []rec{{"45m", running}}, "0.25"},
		{"several runs", []rec{{"0s", running}, {"10m", stopped}, {"15m", running}, {"35m", stopped}}, "0.5"},
		{"only Running counts", []rec{{"0s", starting}, {"5m", running}, {"35m", stopping}, {"36m", stopped}}, "0.5"},
		{"silent agent stopped at its last heartbeat", []rec{{"-1h", running}, {"20m13s", stopped}}, "0.336944444"},
		{"one second", []rec{{"30m", running}, {"30m1s", stopped}}, "0.000277778"},
		{"sub-second times", []rec{{"500ms", running}, {"1.5s", stopped}}, "0.000277778"},
		{"record exactly at the start", []rec{{"0s", running}}, "1"},
		{"record at the end is outside", []rec{{"-1h", running}, {"1h", stopped}}, "1"},
		{"never running", []rec{{"-1h", building}, {"10m", stopped}}, ""},
		{"started after the period", []rec{{"1h5m", running}}, ""},
		{"same instant changes", []rec{{"10m", running}, {"10m", stopped}, {"10m", running}, {"40m", stopped}}, "0.5"},
		{"unsorted records", []rec{{"40m", stopped}, {"10m", running}}, "0.5"},
		{"stopped exactly at the start", []rec{{"-1h", running}, {"0s", stopped}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fake.New()
			s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u1", StackID: "s1", Provider: "sandbox", Label: "sandbox_machine.web"})
			s.Record(history("m1", tc.recs...)...)
			c := &Collector{Machines: s}
			f, err := c.Collect(context.Background(), "u1", at("0s"), at("1h"))
			if err != nil {
				t.Fatal(err)
			}
			pts := f.Usage[ServiceInstance]
			if tc.want == "" {
				if len(pts) != 0 {
					t.Fatalf("got %d points, want none: %+v", len(pts), pts)
				}
				return
			}
			if len(pts) != 1 {
				t.Fatalf("got %d points, want 1", len(pts))
			}
			if !pts[0].Qty.Equal(decimal.RequireFromString(tc.want)) {
				t.Errorf("qty %s, want %s", pts[0].Qty, tc.want)
			}
			if pts[0].Unit != UnitHour {
				t.Errorf("unit %q", pts[0].Unit)
			}
		})
	}
}

func TestCollectPeriods(t *testing.T) {
	s := fake.New()
	for _, id := range []string{"m2", "m1", "m3"} {
		s.AddMachine(&stack.Machine{ID: id, OwnerID: "u1", StackID: "s1", Provider: "aws", Label: "aws_instance." + id})
	}
	s.AddMachine(&stack.Machine{ID: "other", OwnerID: "u2", StackID: "s9", Provider: "aws"})
	s.Record(history("m1", rec{"30m", running}, rec{"2h15m", stopped})...)
	s.Record(history("m2", rec{"-5h", running})...)
	s.Record(history("m3", rec{"1h", running}, rec{"1h1m", stopped}, rec{"2h59m", running})...)
	s.Record(history("other", rec{"0s", running})...)
	c := &Collector{Machines: s}
	frames, err := c.CollectPeriods(context.Background(), "u1", at("0s"), time.Hour, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]struct{ id, qty string }{
		{{"m1", "0.5"}, {"m2", "1"}},
		{{"m1", "1"}, {"m2", "1"}, {"m3", "0.016666667"}},
		{{"m1", "0.25"}, {"m2", "1"}, {"m3", "0.016666667"}},
	}
	if s.HistoryQueries != 1 {
		t.Errorf("%d history queries for 3 periods, want 1", s.HistoryQueries)
	}
	for i, f := range frames {
		if !f.Start.Equal(at("0s").Add(time.Duration(i)*time.Hour)) || f.End.Sub(f.Start) != time.Hour {
			t.Errorf("frame %d: [%s, %s)", i, f.Start, f.End)
		}
		pts := f.Usage[ServiceInstance]
		if len(pts) != len(want[i]) {
			t.Fatalf("frame %d: %d points, want %d", i, len(pts), len(want[i]))
		}
		for j, w := range want[i] {
			if pts[j].Groupby[KeyMachineID] != w.id || !pts[j].Qty.Equal(decimal.RequireFromString(w.qty)) {
				t.Errorf("frame %d point %d: %s %s, want %s %s", i, j, pts[j].Groupby[KeyMachineID], pts[j].Qty, w.id, w.qty)
			}
			if pts[j].Groupby[KeyOwner] != "u1" {
				t.Errorf("frame %d point %d: owner %q", i, j, pts[j].Groupby[KeyOwner])
			}
		}
	}
}

func TestCollectDescription(t *testing.T) {
	s := fake.New()
	meta := func(v any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	s.AddMachine(&stack.Machine{ID: "a", OwnerID: "", StackID: "st", Provider: "aws", Label: "aws_instance.web[0]",
		Metadata: meta(map[string]any{"instance_type": "t3.micro", "availability_zone": "us-east-1a", "ami": "ami-123", "tags": map[string]string{"x": "y"}})})
	s.AddMachine(&stack.Machine{ID: "b", OwnerID: "", StackID: "st", Provider: "digitalocean", Label: "digitalocean_droplet.db",
		Metadata: meta(map[string]any{"size_slug": "s-1vcpu-1gb", "region": "ams3", "image": "ubuntu-24-04-x64", "size": ""})})
	s.AddMachine(&stack.Machine{ID: "c", OwnerID: "", StackID: "st", Provider: "sandbox", Metadata: meta(map[string]any{"size": 2, "region": true})})
	s.AddMachine(&stack.Machine{ID: "d", OwnerID: "x", StackID: "st", Provider: "sandbox", Metadata: json.RawMessage(`not json`)})
	for _, id := range []string{"a", "b", "c", "d", "gone"} {
		s.Record(stack.StateRecord{MachineID: id, State: running, At: at("0s")})
	}
	s.Record(stack.StateRecord{MachineID: "gone", State: running, At: at("0s")})
	c := &Collector{Machines: s}
	f, err := c.Collect(context.Background(), "", at("0s"), at("1h"))
	if err != nil {
		t.Fatal(err)
	}
	pts := f.Usage[ServiceInstance]
	if len(pts) != 5 {
		t.Fatalf("%d points, want 5", len(pts))
	}
	want := []struct{ groupby, metadata map[string]string }{
		{map[string]string{"machine_id": "a", "stack_id": "st", "provider": "aws", "owner": ""},
			map[string]string{"size": "t3.micro", "region": "us-east-1a", "image": "ami-123", "label": "aws_instance.web[0]"}},
		{map[string]string{"machine_id": "b", "stack_id": "st", "provider": "digitalocean", "owner": ""},
			map[string]string{"size": "s-1vcpu-1gb", "region": "ams3", "image": "ubuntu-24-04-x64", "label": "digitalocean_droplet.db"}},
		{map[string]string{"machine_id": "c", "stack_id": "st", "provider": "sandbox", "owner": ""},
			map[string]string{"size": "2", "region": "true"}},
		{map[string]string{"machine_id": "d", "stack_id": "st", "provider": "sandbox", "owner": "x"}, map[string]string{}},
		{map[string]string{"machine_id": "gone", "owner": ""}, map[string]string{}},
	}
	for i, w := range want {
		if !equalMaps(pts[i].Groupby, w.groupby) || !equalMaps(pts[i].Metadata, w.metadata) {
			t.Errorf("point %d: groupby %v metadata %v, want %v %v", i, pts[i].Groupby, pts[i].Metadata, w.groupby, w.metadata)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestCollectErrors(t *testing.T) {
	c := &Collector{Machines: fake.New()}
	if _, err := c.Collect(context.Background(), "u", at("1h"), at("1h")); err == nil {
		t.Error("empty period accepted")
	}
	if _, err := c.CollectPeriods(context.Background(), "u", at("0s"), time.Hour, 0); err == nil {
		t.Error("zero periods accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Collect(ctx, "u", at("0s"), at("1h")); err == nil {
		t.Error("cancelled context accepted")
	}
}

func TestHours(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{time.Hour, "1"}, {2 * time.Hour, "2"}, {30 * time.Minute, "0.5"}, {time.Second, "0.000277778"},
		{20*time.Minute + 13*time.Second, "0.336944444"}, {time.Nanosecond, "0"}, {1800 * time.Microsecond, "0.0000005"},
	} {
		if got := Hours(tc.d); !got.Equal(decimal.RequireFromString(tc.want)) {
			t.Errorf("Hours(%s) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

// TestCollectListsOnce checks that one collection lists the machines once,
// after reading the history, even when the history holds a machine that no
// longer exists.
func TestCollectListsOnce(t *testing.T) {
	s := fake.New()
	s.AddMachine(&stack.Machine{ID: "m1", OwnerID: "u"})
	s.AddMachine(&stack.Machine{ID: "gone", OwnerID: "u"})
	s.Record(history("m1", rec{"0s", running})...)
	s.Record(history("gone", rec{"0s", running})...)
	s.DeleteMachine("gone")
	q := &queryLog{Store: s}
	f, err := (&Collector{Machines: q}).Collect(context.Background(), "u", at("0s"), at("1h"))
	if err != nil {
		t.Fatal(err)
	}
	if n := f.Len(); n != 2 {
		t.Fatalf("%d points, want 2", n)
	}
	if q.lists != 1 {
		t.Errorf("%d machine lists, want 1", q.lists)
	}
}
