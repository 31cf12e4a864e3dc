package listcache

import (
	"context"
	"time"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/stack"
	"github.com/kloud/kloud/store"
)

// Watch returns st with every machine change made through it invalidating
// c. Heartbeats (TouchMachine) do not: a list shows last-seen times at most
// a second late.
func Watch(st store.Store, c *Machines) store.Store { return watched{Store: st, lists: c} }

type watched struct {
	store.Store
	lists *Machines
}

func (w watched) PutMachine(ctx context.Context, m *stack.Machine) error {
	defer w.lists.Invalidate()
	return w.Store.PutMachine(ctx, m)
}

func (w watched) SetMachineState(ctx context.Context, id string, state machinestate.State, reason string, at time.Time) error {
	defer w.lists.Invalidate()
	return w.Store.SetMachineState(ctx, id, state, reason, at)
}

func (w watched) DeleteMachine(ctx context.Context, id string) error {
	defer w.lists.Invalidate()
	return w.Store.DeleteMachine(ctx, id)
}
