// Package singleton runs a periodic pass on one replica at a time: each
// tick, the replica takes or renews a named lease in the store and runs
// the pass only while it holds it (the machine checker, the rating
// processor).
package singleton

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kloud/kloud/store"
)

// Leases is what a singleton asks of the store's leases.
type Leases interface {
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (*store.Lease, error)
	ReleaseLease(ctx context.Context, name, holder string) error
	GetLease(ctx context.Context, name string) (*store.Lease, error)
}

// Ticker starts ticks every d until stop is called. The default is
// time.NewTicker's; tests pass a channel they send on.
type Ticker func(d time.Duration) (ticks <-chan time.Time, stop func())

// RealTicker is the Ticker of time.NewTicker.
func RealTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Loop is one singleton: a lease name, this replica's name as its holder,
// and the interval of its passes. The lease lasts three intervals, so a
// replica that dies hands it over within that.
type Loop struct {
	Name     string
	Holder   string
	Interval time.Duration
	Leases   Leases
	// Now is the clock (default time.Now); Tick makes the ticks (default
	// RealTicker).
	Now  func() time.Time
	Tick Ticker
	Log  *slog.Logger
}

func (l *Loop) now() time.Time {
	if l.Now == nil {
		return time.Now().UTC()
	}
	return l.Now().UTC()
}

func (l *Loop) log() *slog.Logger {
	if l.Log == nil {
		return slog.Default()
	}
	return l.Log
}

// Run calls pass at every tick while this replica holds the lease, until
// ctx ends or the ticks do; then it gives the lease up. A pass's error is
// logged.
func (l *Loop) Run(ctx context.Context, pass func(context.Context) error) {
	tick := l.Tick
	if tick == nil {
		tick = RealTicker
	}
	ticks, stop := tick(l.Interval)
	defer stop()
	defer func() { _ = l.Leases.ReleaseLease(context.WithoutCancel(ctx), l.Name, l.Holder) }()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ticks:
			if !ok {
				return
			}
			if !l.hold(ctx) {
				continue
			}
			if err := pass(ctx); err != nil && ctx.Err() == nil {
				l.log().Error("singleton pass", slog.String("lease", l.Name), slog.String("error", err.Error()))
			}
		}
	}
}

// hold takes or renews the lease and reports whether this replica holds it.
func (l *Loop) hold(ctx context.Context) bool {
	_, err := l.Leases.AcquireLease(ctx, l.Name, l.Holder, l.now(), 3*l.Interval)
	if err != nil && !errors.Is(err, store.ErrLeaseHeld) && ctx.Err() == nil {
		l.log().Error("acquire singleton lease", slog.String("lease", l.Name), slog.String("error", err.Error()))
	}
	return err == nil
}

// Held reports whether this replica holds the lease now.
func (l *Loop) Held(ctx context.Context) bool {
	le, err := l.Leases.GetLease(ctx, l.Name)
	return err == nil && le.Holder == l.Holder && le.Expires.After(l.now())
}
