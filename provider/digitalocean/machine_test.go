package digitalocean

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider/digitalocean/dosim"
)

// TestInfoStates checks every droplet status mapping, the 404 and
// never-built cases, and the metadata Info reports (what the rating bridge
// prices by: size, region, image).
func TestInfoStates(t *testing.T) {
	// NewPolls 5: the droplet is still new when Info looks at it.
	e := newEnv(t, dosim.Options{NewPolls: 5})
	tests := []struct {
		status string
		want   machinestate.State
	}{
		{dosim.StatusNew, machinestate.Starting},
		{dosim.StatusActive, machinestate.Running},
		{dosim.StatusOff, machinestate.Stopped},
		{dosim.StatusArchive, machinestate.Terminated},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			d := e.sim.AddDroplet(dosim.Droplet{
				Name: "web-0", Status: tt.status, Region: "ams3", Size: "s-2vcpu-4gb", Image: "ubuntu-24-04-x64",
				PublicIPv4: "203.0.113.10", PrivateIPv4: "10.110.0.5", VPCUUID: "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
			})
			st, meta, err := e.machine(t, d.ID).Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st != tt.want {
				t.Errorf("state = %v, want %v", st, tt.want)
			}
			md := meta.(*Metadata)
			want := Metadata{ID: strconv.Itoa(d.ID), Name: "web-0", Region: "ams3", Size: "s-2vcpu-4gb", Image: "ubuntu-24-04-x64",
				PublicIPv4: "203.0.113.10", PrivateIPv4: "10.110.0.5", Status: tt.status, VPCUUID: "5a4981aa-9653-4bd1-bef5-d6bff52042e4"}
			if *md != want {
				t.Errorf("metadata = %+v, want %+v", *md, want)
			}
		})
	}
	t.Run("unknown status", func(t *testing.T) {
		if got := DropletState("frozen"); got != machinestate.Unknown {
			t.Errorf("DropletState(frozen) = %v", got)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		d := e.sim.AddDroplet(dosim.Droplet{})
		e.sim.DeleteDroplet(d.ID)
		st, meta, err := e.machine(t, d.ID).Info(context.Background())
		if err != nil || st != machinestate.NotInitialized || meta.(*Metadata).ID != strconv.Itoa(d.ID) {
			t.Errorf("Info = %v, %+v, %v; want NotInitialized", st, meta, err)
		}
	})
	t.Run("never built", func(t *testing.T) {
		st, _, err := e.machine(t, 0).Info(context.Background())
		if err != nil || st != machinestate.NotInitialized {
			t.Errorf("Info = %v, %v; want NotInitialized", st, err)
		}
	})
	t.Run("image without slug", func(t *testing.T) {
		d := e.sim.AddDroplet(dosim.Droplet{Image: "", ImageID: 154290234})
		_, meta, err := e.machine(t, d.ID).Info(context.Background())
		if err != nil || meta.(*Metadata).Image != "154290234" {
			t.Errorf("Info = %+v, %v; want the image ID", meta, err)
		}
	})
}

// TestStart checks that Start powers an off droplet on and waits for the
// action (polled with a growing interval) and the active status.
func TestStart(t *testing.T) {
	e := newEnv(t, dosim.Options{ActionPolls: 4})
	d := e.sim.AddDroplet(dosim.Droplet{Status: dosim.StatusOff})
	meta, err := e.machine(t, d.ID).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if md := meta.(*Metadata); md.Status != "active" || md.ID != strconv.Itoa(d.ID) || md.Size != "s-1vcpu-1gb" {
		t.Errorf("metadata = %+v", md)
	}
	if got := e.sim.ActionTypes(); !slices.Equal(got, []string{"power_on"}) {
		t.Errorf("actions = %v", got)
	}
	acts := e.sim.DropletActions(d.ID)
	if len(acts) != 1 || acts[0].Status != dosim.ActionCompleted {
		t.Errorf("actions = %+v", acts)
	}
	// Polls at 1 s, 1.5 s, 2.25 s, 3.375 s: the interval grows.
	if got := e.clock.Sleeps(); len(got) < 3 || !(got[0] < got[1] && got[1] < got[2]) {
		t.Errorf("poll waits = %v, want growing", got)
	}
	if dd, _ := e.sim.Droplet(d.ID); dd.Status != dosim.StatusActive || dd.Locked {
		t.Errorf("droplet = %+v", dd)
	}
}

// TestStartNoop checks that starting an active droplet posts nothing and
// that a new droplet is only waited for until it is active.
func TestStartNoop(t *testing.T) {
	e := newEnv(t, dosim.Options{NewPolls: 3})
	active := e.sim.AddDroplet(dosim.Droplet{})
	booting := e.sim.AddDroplet(dosim.Droplet{Status: dosim.StatusNew})
	for _, id := range []int{active.ID, booting.ID} {
		meta, err := e.machine(t, id).Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if meta.(*Metadata).Status != "active" {
			t.Errorf("droplet %d: metadata = %+v", id, meta)
		}
	}
	if got := e.sim.ActionTypes(); len(got) != 0 {
		t.Errorf("actions = %v, want none", got)
	}
}

// TestStopGraceful checks that a shutdown that turns the droplet off in
// time is all Stop does.
func TestStopGraceful(t *testing.T) {
	e := newEnv(t, dosim.Options{ShutdownPolls: 3})
	d := e.sim.AddDroplet(dosim.Droplet{})
	meta, err := e.machine(t, d.ID).Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if meta.(*Metadata).Status != "off" {
		t.Errorf("metadata = %+v", meta)
	}
	if got := e.sim.ActionTypes(); !slices.Equal(got, []string{"shutdown"}) {
		t.Errorf("actions = %v, want only shutdown", got)
	}
	// Stopping again does nothing.
	if _, err := e.machine(t, d.ID).Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.ActionTypes(); len(got) != 1 {
		t.Errorf("actions = %v after a second Stop", got)
	}
}

// TestStopPowerOffFallback checks both reasons Stop powers a droplet off:
// a shutdown still running when ShutdownTimeout (20 s here) passes, and a
// shutdown the guest ignored (the action errored).
func TestStopPowerOffFallback(t *testing.T) {
	t.Run("shutdown too slow", func(t *testing.T) {
		e := newEnv(t, dosim.Options{})
		d := e.sim.AddDroplet(dosim.Droplet{ShutdownPolls: 1000})
		start := e.clock.Now()
		meta, err := e.machine(t, d.ID).Stop(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if meta.(*Metadata).Status != "off" {
			t.Errorf("metadata = %+v", meta)
		}
		if got := e.sim.ActionTypes(); !slices.Equal(got, []string{"shutdown", "power_off"}) {
			t.Errorf("actions = %v", got)
		}
		acts := e.sim.DropletActions(d.ID)
		if acts[0].Status != dosim.ActionErrored || acts[1].Status != dosim.ActionCompleted {
			t.Errorf("actions = %+v", acts)
		}
		if waited := e.clock.Now().Sub(start); waited < 20*time.Second || waited > 30*time.Second {
			t.Errorf("waited %v on the clock, want the 20 s shutdown timeout and a little", waited)
		}
	})
	t.Run("shutdown ignored", func(t *testing.T) {
		e := newEnv(t, dosim.Options{ShutdownPolls: 2})
		d := e.sim.AddDroplet(dosim.Droplet{IgnoreShutdown: true})
		start := e.clock.Now()
		if _, err := e.machine(t, d.ID).Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := e.sim.ActionTypes(); !slices.Equal(got, []string{"shutdown", "power_off"}) {
			t.Errorf("actions = %v", got)
		}
		if dd, _ := e.sim.Droplet(d.ID); dd.Status != dosim.StatusOff {
			t.Errorf("droplet = %+v", dd)
		}
		if waited := e.clock.Now().Sub(start); waited >= 20*time.Second {
			t.Errorf("waited %v: an errored shutdown should not wait for the timeout", waited)
		}
	})
}

// TestWaitTimeout checks that a power_on that never completes fails with
// ErrTimeout once ActionTimeout (1 min) passes on the clock, after a
// bounded number of polls.
func TestWaitTimeout(t *testing.T) {
	e := newEnv(t, dosim.Options{ActionPolls: 1 << 20})
	d := e.sim.AddDroplet(dosim.Droplet{Status: dosim.StatusOff})
	start := e.clock.Now()
	_, err := e.machine(t, d.ID).Start(context.Background())
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if waited := e.clock.Now().Sub(start); waited != time.Minute {
		t.Errorf("waited %v on the clock, want exactly the 1 min timeout", waited)
	}
	// 1 s growing by half to 4 s over a minute: about 17 polls.
	if n := len(e.sim.Requests()); n > 25 {
		t.Errorf("%d requests: polling did not back off", n)
	}
}

// TestArchivedAndCancelled checks that an archived droplet can be neither
// started nor stopped, and that a cancelled context stops a wait.
func TestArchivedAndCancelled(t *testing.T) {
	e := newEnv(t, dosim.Options{ActionPolls: 1 << 20})
	archived := e.sim.AddDroplet(dosim.Droplet{Status: dosim.StatusArchive})
	if _, err := e.machine(t, archived.ID).Start(context.Background()); !errors.Is(err, ErrDropletArchived) {
		t.Errorf("Start: err = %v", err)
	}
	if _, err := e.machine(t, archived.ID).Stop(context.Background()); !errors.Is(err, ErrDropletArchived) {
		t.Errorf("Stop: err = %v", err)
	}
	off := e.sim.AddDroplet(dosim.Droplet{Status: dosim.StatusOff})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.machine(t, off.ID).Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with a cancelled context: err = %v", err)
	}
	if _, err := e.machine(t, 0).Start(context.Background()); !errors.Is(err, ErrNoDropletID) {
		t.Errorf("Start of a machine never built: err = %v", err)
	}
}

// TestPendingEvent checks that a Start meeting an action already in
// progress (a power_on started elsewhere: the API answers 422 "pending
// event") waits for it instead of failing.
func TestPendingEvent(t *testing.T) {
	e := newEnv(t, dosim.Options{ActionPolls: 3})
	d := e.sim.AddDroplet(dosim.Droplet{Status: dosim.StatusOff})
	// Someone else powers it on: the power_on is in progress.
	other := e.machine(t, d.ID)
	c, err := other.client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.dropletAction(context.Background(), d.ID, actionPowerOn); err != nil {
		t.Fatal(err)
	}
	if _, err := e.machine(t, d.ID).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if dd, _ := e.sim.Droplet(d.ID); dd.Status != dosim.StatusActive {
		t.Errorf("droplet = %+v", dd)
	}
	if got := e.sim.ActionTypes(); !slices.Equal(got[:2], []string{"power_on", "power_on"}) {
		t.Errorf("actions = %v, want the other power_on, then Start's refused one", got)
	}
	if acts := e.sim.DropletActions(d.ID); len(acts) != 1 {
		t.Errorf("accepted actions = %+v, want only the other one", acts)
	}
}
