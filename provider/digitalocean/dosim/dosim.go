// Package dosim is a simulator of DigitalOcean's v2 JSON API for tests; it
// is not the cloud. It serves, on a loopback HTTP server, the calls Kloud's
// digitalocean provider makes through godo: the account, droplets, droplet
// actions and actions, with bearer-token authentication, DigitalOcean's
// error bodies and rate-limit headers. Droplets and actions change state as
// they are polled (a new droplet becomes active, an action goes from
// in-progress to completed or errored), and faults can be injected:
// throttling (429), server errors, per-request delays, and droplets that
// ignore a graceful shutdown.
//
// Polls, not time, drive the state changes, so a test steps the simulator
// deterministically: every GET of an action and every GET of a droplet
// counts as one poll of that droplet's pending action.
package dosim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Droplet statuses, as the API spells them.
const (
	StatusNew     = "new"
	StatusActive  = "active"
	StatusOff     = "off"
	StatusArchive = "archive"
)

// Action statuses, as the API spells them.
const (
	ActionInProgress = "in-progress"
	ActionCompleted  = "completed"
	ActionErrored    = "errored"
)

// Action types the simulator performs.
const (
	PowerOn  = "power_on"
	PowerOff = "power_off"
	Shutdown = "shutdown"
)

// Options configure a simulator. Zero values take the defaults noted.
type Options struct {
	// NewPolls is how many polls a droplet seeded with status "new" stays
	// new before it becomes active (default 1).
	NewPolls int
	// ActionPolls is how many polls a power_on or power_off action stays
	// in-progress (default 1).
	ActionPolls int
	// ShutdownPolls is how many polls a shutdown action leaves the droplet
	// on, in progress, before it completes (default 1). A droplet seeded
	// with its own ShutdownPolls overrides it.
	ShutdownPolls int
	// RateLimit is the ratelimit-limit header (default 5000 requests per
	// hour); ratelimit-remaining counts down from it.
	RateLimit int
	// Now is the simulator's clock (time.Now if nil): timestamps and the
	// ratelimit-reset header.
	Now func() time.Time
}

// Account is what GET /v2/account answers for a token.
type Account struct {
	Email        string
	UUID         string
	Status       string // active (default), warning or locked
	StatusMsg    string
	DropletLimit int
}

// Droplet is a droplet as a test seeds and inspects it.
type Droplet struct {
	ID          int
	Name        string
	Region      string // slug (default nyc3)
	Size        string // slug (default s-1vcpu-1gb)
	Image       string // slug (default ubuntu-24-04-x64)
	ImageID     int
	Status      string // new, active (default), off or archive
	PublicIPv4  string
	PrivateIPv4 string
	VPCUUID     string
	Tags        []string
	// IgnoreShutdown makes a graceful shutdown fail: the shutdown action
	// ends errored and the droplet stays on, as a guest that ignores ACPI.
	IgnoreShutdown bool
	// ShutdownPolls, when positive, overrides Options.ShutdownPolls.
	ShutdownPolls int
	// Locked is true while an action is in progress.
	Locked bool
}

// Action is an action as a test inspects it.
type Action struct {
	ID          int
	Type        string
	Status      string
	DropletID   int
	Region      string
	StartedAt   time.Time
	CompletedAt time.Time // zero until it ends
}

// Request is one request the simulator answered.
type Request struct {
	Method string
	Path   string
	// ActionType is the "type" of a POST .../actions body.
	ActionType string
	Status     int
}

// Throttling makes the next Requests requests answer 429.
type Throttling struct {
	Requests int
	// RetryAfter is how long the client is told to wait: the ratelimit-reset
	// header is now + RetryAfter, and Retry-After (whole seconds, rounded
	// up) is sent unless NoRetryAfter.
	RetryAfter   time.Duration
	NoRetryAfter bool
}

// Server is a running simulator. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server

	mu         sync.Mutex
	accounts   map[string]Account
	droplets   map[int]*droplet
	actions    map[int]*action
	nextDrop   int
	nextAction int
	remaining  int
	throttle   Throttling
	failN      int
	failStatus int
	delay      time.Duration
	requests   []Request
}

type droplet struct {
	Droplet
	created   time.Time
	newPolls  int
	pending   *action
	actionIDs []int
}

type action struct {
	Action
	polls int // polls left while in progress
}

// New starts a simulator on 127.0.0.1. Close it when done.
func New(opts Options) *Server {
	if opts.NewPolls <= 0 {
		opts.NewPolls = 1
	}
	if opts.ActionPolls <= 0 {
		opts.ActionPolls = 1
	}
	if opts.ShutdownPolls <= 0 {
		opts.ShutdownPolls = 1
	}
	if opts.RateLimit <= 0 {
		opts.RateLimit = 5000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:       opts,
		accounts:   map[string]Account{},
		droplets:   map[int]*droplet{},
		actions:    map[int]*action{},
		nextDrop:   3164494,
		nextAction: 36804636,
		remaining:  opts.RateLimit,
	}
	s.srv = httptest.NewServer(s.handler())
	return s
}

// URL is the simulator's API endpoint (no trailing slash), what the
// provider's endpoint credential field takes.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server, waiting for requests in flight.
func (s *Server) Close() { s.srv.Close() }

// AddAccount makes token valid, answering GET /v2/account with a.
func (s *Server) AddAccount(token string, a Account) {
	if a.Status == "" {
		a.Status = "active"
	}
	if a.UUID == "" {
		a.UUID = newUUID()
	}
	if a.DropletLimit == 0 {
		a.DropletLimit = 25
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[token] = a
}

// AddDroplet seeds a droplet and returns it with its ID and defaults.
func (s *Server) AddDroplet(d Droplet) Droplet {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.ID == 0 {
		s.nextDrop++
		d.ID = s.nextDrop
	}
	if d.Name == "" {
		d.Name = "droplet-" + strconv.Itoa(d.ID)
	}
	if d.Region == "" {
		d.Region = "nyc3"
	}
	if d.Size == "" {
		d.Size = "s-1vcpu-1gb"
	}
	if d.Image == "" && d.ImageID == 0 {
		d.Image = "ubuntu-24-04-x64"
	}
	if d.ImageID == 0 {
		d.ImageID = 129211873
	}
	if d.Status == "" {
		d.Status = StatusActive
	}
	n := len(s.droplets) + 2
	if d.PublicIPv4 == "" {
		d.PublicIPv4 = fmt.Sprintf("203.0.113.%d", n%250+2)
	}
	if d.PrivateIPv4 == "" {
		d.PrivateIPv4 = fmt.Sprintf("10.110.0.%d", n%250+2)
	}
	if d.VPCUUID == "" {
		d.VPCUUID = newUUID()
	}
	d.Tags = slices.Clone(d.Tags)
	s.droplets[d.ID] = &droplet{Droplet: d, created: s.opts.Now().UTC(), newPolls: s.opts.NewPolls}
	return s.view(s.droplets[d.ID])
}

// Droplet returns the droplet with id as it is now.
func (s *Server) Droplet(id int) (Droplet, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.droplets[id]
	if !ok {
		return Droplet{}, false
	}
	return s.view(d), true
}

func (s *Server) view(d *droplet) Droplet {
	out := d.Droplet
	out.Tags = slices.Clone(d.Tags)
	out.Locked = d.pending != nil
	return out
}

// SetStatus sets a droplet's status directly (as something outside Kloud
// would: the console, a crash, DigitalOcean archiving it).
func (s *Server) SetStatus(id int, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.droplets[id]
	if !ok {
		return fmt.Errorf("droplet %d not found", id)
	}
	switch status {
	case StatusNew, StatusActive, StatusOff, StatusArchive:
	default:
		return fmt.Errorf("status %q: want new, active, off or archive", status)
	}
	d.Status = status
	return nil
}

// DeleteDroplet removes a droplet: its GET answers 404 from now on.
func (s *Server) DeleteDroplet(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.droplets, id)
}

// Action returns the action with id as it is now.
func (s *Server) Action(id int) (Action, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.actions[id]
	if !ok {
		return Action{}, false
	}
	return a.Action, true
}

// DropletActions returns the actions of a droplet, oldest first.
func (s *Server) DropletActions(id int) []Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.droplets[id]
	if !ok {
		return nil
	}
	out := make([]Action, 0, len(d.actionIDs))
	for _, aid := range d.actionIDs {
		out = append(out, s.actions[aid].Action)
	}
	return out
}

// Throttle makes the next t.Requests requests answer 429.
func (s *Server) Throttle(t Throttling) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = t
}

// Fail makes the next n requests answer status (a 5xx) with a server error.
func (s *Server) Fail(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failStatus = n, status
}

// SetDelay delays every answer by d (or until the request is cancelled).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns the requests answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ActionTypes returns the types of the actions requested so far (accepted
// or not), in order: what a test asserts a call sequence with.
func (s *Server) ActionTypes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.requests {
		if r.ActionType != "" {
			out = append(out, r.ActionType)
		}
	}
	return out
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
