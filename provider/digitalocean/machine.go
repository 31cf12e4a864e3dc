package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/digitalocean/godo"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
)

// Droplet statuses, as the API spells them.
const (
	statusNew     = "new"
	statusActive  = "active"
	statusOff     = "off"
	statusArchive = "archive"
)

// Action statuses, as the API spells them.
const (
	actionCompleted = "completed"
	actionErrored   = "errored"
)

// Sentinel errors of machine control.
var (
	// ErrNoDropletID: the machine's metadata names no droplet (it was
	// never built).
	ErrNoDropletID = errors.New("machine has no droplet id in its metadata")
	// ErrActionErrored: DigitalOcean reports the action failed.
	ErrActionErrored = errors.New("droplet action errored")
	// ErrTimeout: an action or a status did not come within its timeout.
	ErrTimeout = errors.New("timed out")
	// ErrDropletArchived: the droplet is archived (destroyed) and cannot
	// be started or stopped.
	ErrDropletArchived = errors.New("droplet is archived")
)

// DropletState maps a droplet status to a machine state: new → Starting,
// active → Running, off → Stopped, archive → Terminated, anything else →
// Unknown.
func DropletState(status string) machinestate.State {
	switch status {
	case statusNew:
		return machinestate.Starting
	case statusActive:
		return machinestate.Running
	case statusOff:
		return machinestate.Stopped
	case statusArchive:
		return machinestate.Terminated
	}
	return machinestate.Unknown
}

// Machine controls one droplet through the DigitalOcean API.
type Machine struct {
	*provider.BaseMachine
	opts Options
}

var _ provider.Machine = (*Machine)(nil)

// metadata returns the machine's stored metadata (a fresh one if none).
func (m *Machine) metadata() *Metadata {
	if md, ok := m.Metadata.(*Metadata); ok && md != nil {
		c := *md
		return &c
	}
	return &Metadata{}
}

func (m *Machine) label() string {
	if m.BaseMachine != nil && m.BaseMachine.Machine != nil {
		return m.BaseMachine.Machine.ID
	}
	return ""
}

// dropletID returns the droplet's ID from the metadata.
func (m *Machine) dropletID() (int, error) {
	md := m.metadata()
	if md.ID == "" {
		return 0, fmt.Errorf("digitalocean machine %s: %w", m.label(), ErrNoDropletID)
	}
	id, err := strconv.Atoi(md.ID)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("digitalocean machine %s: droplet id %q is not a positive integer", m.label(), md.ID)
	}
	return id, nil
}

func (m *Machine) client() (*api, error) {
	cred, ok := m.Cred.(*Credential)
	if !ok || cred == nil {
		return nil, fmt.Errorf("digitalocean machine %s: the credential is %T, want *digitalocean.Credential", m.label(), m.Cred)
	}
	return newAPI(cred, m.opts, m.Log)
}

// result is the metadata after a call: the stored one refreshed from d.
func (m *Machine) result(d *godo.Droplet) *Metadata {
	md := m.metadata()
	md.ID = strconv.Itoa(d.ID)
	md.Name = d.Name
	md.Status = d.Status
	md.VPCUUID = d.VPCUUID
	if d.Region != nil && d.Region.Slug != "" {
		md.Region = d.Region.Slug
	}
	switch {
	case d.SizeSlug != "":
		md.Size = d.SizeSlug
	case d.Size != nil && d.Size.Slug != "":
		md.Size = d.Size.Slug
	}
	// Terraform keeps the image as the template named it (a slug or an
	// ID); the API's slug wins when it has one, else the stored value.
	if d.Image != nil {
		switch {
		case d.Image.Slug != "":
			md.Image = d.Image.Slug
		case md.Image == "" && d.Image.ID != 0:
			md.Image = strconv.Itoa(d.Image.ID)
		}
	}
	if ip, err := d.PublicIPv4(); err == nil {
		md.PublicIPv4 = ip
	}
	if ip, err := d.PrivateIPv4(); err == nil {
		md.PrivateIPv4 = ip
	}
	return md
}

// Info reports the droplet's state from Droplets.Get; a droplet the API
// does not know (404), or a machine never built, is NotInitialized.
func (m *Machine) Info(ctx context.Context) (machinestate.State, any, error) {
	id, err := m.dropletID()
	if errors.Is(err, ErrNoDropletID) {
		return machinestate.NotInitialized, m.metadata(), nil
	}
	if err != nil {
		return machinestate.Unknown, nil, err
	}
	c, err := m.client()
	if err != nil {
		return machinestate.Unknown, nil, err
	}
	d, err := c.droplet(ctx, id)
	if errors.Is(err, ErrNotFound) {
		md := m.metadata()
		md.Status, md.PublicIPv4, md.PrivateIPv4 = "", "", ""
		return machinestate.NotInitialized, md, nil
	}
	if err != nil {
		return machinestate.Unknown, nil, fmt.Errorf("digitalocean machine info: %w", err)
	}
	return DropletState(d.Status), m.result(d), nil
}

// Start powers the droplet on and waits until the power_on action
// completes and the droplet is active. Starting an active droplet does
// nothing; a new one is only waited for.
func (m *Machine) Start(ctx context.Context) (any, error) {
	id, err := m.dropletID()
	if err != nil {
		return nil, fmt.Errorf("start droplet: %w", err)
	}
	c, err := m.client()
	if err != nil {
		return nil, fmt.Errorf("start droplet: %w", err)
	}
	w := m.waiter(c)
	deadline := w.now().Add(m.opts.ActionTimeout)
	d, err := c.droplet(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("start droplet: %w", err)
	}
	switch d.Status {
	case statusActive:
		return m.result(d), nil
	case statusArchive:
		return m.result(d), fmt.Errorf("start droplet %d: %w", id, ErrDropletArchived)
	case statusNew:
		d, err = w.status(ctx, id, statusActive, deadline)
		if err != nil {
			return nil, fmt.Errorf("start droplet: %w", err)
		}
		return m.result(d), nil
	}
	act, err := w.post(ctx, id, actionPowerOn, statusActive, deadline)
	if err != nil {
		return nil, fmt.Errorf("start droplet: %w", err)
	}
	if act != nil {
		if _, err := w.action(ctx, act, deadline); err != nil {
			return nil, fmt.Errorf("start droplet: %w", err)
		}
	}
	d, err = w.status(ctx, id, statusActive, deadline)
	if err != nil {
		return nil, fmt.Errorf("start droplet: %w", err)
	}
	return m.result(d), nil
}

// Stop shuts the droplet down gracefully and, when that does not turn it
// off within ShutdownTimeout (the guest ignored it, or the action errored
// or is still running), powers it off, waiting for the droplet to be off.
// Stopping a droplet that is off does nothing.
func (m *Machine) Stop(ctx context.Context) (any, error) {
	id, err := m.dropletID()
	if err != nil {
		return nil, fmt.Errorf("stop droplet: %w", err)
	}
	c, err := m.client()
	if err != nil {
		return nil, fmt.Errorf("stop droplet: %w", err)
	}
	w := m.waiter(c)
	d, err := c.droplet(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("stop droplet: %w", err)
	}
	switch d.Status {
	case statusOff:
		return m.result(d), nil
	case statusArchive:
		return m.result(d), fmt.Errorf("stop droplet %d: %w", id, ErrDropletArchived)
	}

	graceful := w.now().Add(m.opts.ShutdownTimeout)
	shutdown, err := w.post(ctx, id, actionShutdown, statusOff, graceful)
	switch {
	case err == nil && shutdown == nil:
		// Off already (a pending event turned it off).
		return m.settle(ctx, w, id, statusOff, w.now().Add(m.opts.ActionTimeout))
	case err != nil && !errors.Is(err, ErrAPI) && !errors.Is(err, ErrTimeout):
		// Unauthorized, unreachable, throttled past retries, cancelled:
		// powering off would fail the same way.
		return nil, fmt.Errorf("stop droplet: %w", err)
	case err != nil:
		w.log("graceful shutdown refused; powering off", id, err)
	default:
		act, werr := w.action(ctx, shutdown, graceful)
		if werr == nil {
			d, err := c.droplet(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("stop droplet: %w", err)
			}
			if d.Status == statusOff {
				return m.result(d), nil
			}
			werr = fmt.Errorf("shutdown action %d completed but droplet %d is %s", act.ID, id, d.Status)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stop droplet: %w", ctx.Err())
		}
		w.log("graceful shutdown did not turn the droplet off; powering off", id, werr)
	}

	deadline := w.now().Add(m.opts.ActionTimeout)
	act, err := w.post(ctx, id, actionPowerOff, statusOff, deadline)
	if err != nil {
		return nil, fmt.Errorf("stop droplet: %w", err)
	}
	if act != nil {
		if _, err := w.action(ctx, act, deadline); err != nil {
			return nil, fmt.Errorf("stop droplet: %w", err)
		}
	}
	return m.settle(ctx, w, id, statusOff, deadline)
}

// settle waits for the droplet to reach status and returns its metadata.
func (m *Machine) settle(ctx context.Context, w *waiter, id int, status string, deadline time.Time) (any, error) {
	d, err := w.status(ctx, id, status, deadline)
	if err != nil {
		return nil, fmt.Errorf("stop droplet: %w", err)
	}
	return m.result(d), nil
}

func (m *Machine) waiter(c *api) *waiter {
	return &waiter{c: c, opts: m.opts}
}

// waiter polls actions and droplets with a growing interval until a
// deadline on the options' clock.
type waiter struct {
	c    *api
	opts Options
}

func (w *waiter) now() time.Time { return w.opts.Now() }

func (w *waiter) log(msg string, id int, err error) {
	w.c.log.Info(msg, "droplet", id, "reason", fmt.Sprint(err))
}

// pause sleeps for the interval (never past the deadline) and returns the
// next interval; it fails when the deadline has passed.
func (w *waiter) pause(ctx context.Context, interval time.Duration, deadline time.Time, what string) (time.Duration, error) {
	left := deadline.Sub(w.now())
	if left <= 0 {
		return 0, fmt.Errorf("%w waiting for %s", ErrTimeout, what)
	}
	if err := w.opts.Sleep(ctx, min(interval, left)); err != nil {
		return 0, fmt.Errorf("waiting for %s: %w", what, err)
	}
	return min(interval*3/2, w.opts.MaxPollInterval), nil
}

// action polls act (Actions.Get) until it is completed or errored, or the
// deadline passes.
func (w *waiter) action(ctx context.Context, act *godo.Action, deadline time.Time) (*godo.Action, error) {
	interval := w.opts.PollInterval
	what := fmt.Sprintf("%s action %d on droplet %d", act.Type, act.ID, act.ResourceID)
	for {
		switch act.Status {
		case actionCompleted:
			return act, nil
		case actionErrored:
			return act, fmt.Errorf("%s: %w", what, ErrActionErrored)
		}
		var err error
		if interval, err = w.pause(ctx, interval, deadline, what+" (still "+act.Status+")"); err != nil {
			return act, err
		}
		next, err := w.c.action(ctx, act.ID)
		if err != nil {
			return act, err
		}
		act = next
	}
}

// status polls the droplet (Droplets.Get) until it has status.
func (w *waiter) status(ctx context.Context, id int, status string, deadline time.Time) (*godo.Droplet, error) {
	interval := w.opts.PollInterval
	for {
		d, err := w.c.droplet(ctx, id)
		if err != nil {
			return nil, err
		}
		switch {
		case d.Status == status:
			return d, nil
		case d.Status == statusArchive:
			return d, fmt.Errorf("droplet %d: %w", id, ErrDropletArchived)
		}
		if interval, err = w.pause(ctx, interval, deadline, fmt.Sprintf("droplet %d to be %s (it is %s)", id, status, d.Status)); err != nil {
			return d, err
		}
	}
}

// post posts a droplet action. While the API answers that the droplet has
// a pending event (another action still running), it polls the droplet and
// tries again, until the droplet shows want on its own (the other action
// did the work) or the deadline passes. A droplet already in the state the
// action leads to needs no action: the returned action is nil then.
func (w *waiter) post(ctx context.Context, id int, typ, want string, deadline time.Time) (*godo.Action, error) {
	interval := w.opts.PollInterval
	for {
		act, err := w.c.dropletAction(ctx, id, typ)
		switch {
		case err == nil:
			return act, nil
		case isUnprocessable(err, "already powered"):
			return nil, nil
		case !isUnprocessable(err, "pending event"):
			return nil, err
		}
		if interval, err = w.pause(ctx, interval, deadline, fmt.Sprintf("droplet %d's pending event to end before %s", id, typ)); err != nil {
			return nil, err
		}
		d, err := w.c.droplet(ctx, id)
		if err != nil {
			return nil, err
		}
		if d.Status == want && !d.Locked {
			return nil, nil
		}
	}
}
