package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kloud/kloud/machinestate"
	"github.com/kloud/kloud/provider"
)

// Sentinel errors of machine control.
var (
	// ErrNoInstanceID: the machine's metadata names no instance (it was
	// never built).
	ErrNoInstanceID = errors.New("aws machine has no instance id in its metadata")
	// ErrTimeout: the instance did not reach the wanted state in time.
	ErrTimeout = errors.New("timed out waiting for the instance")
	// ErrUnexpectedState: while waiting, the instance went where it
	// cannot come back from (shutting-down, terminated).
	ErrUnexpectedState = errors.New("instance left the expected states")
)

// StateOf maps an EC2 instance state to Kloud's machine state.
func StateOf(s ec2types.InstanceStateName) machinestate.State {
	switch s {
	case ec2types.InstanceStateNamePending:
		return machinestate.Starting
	case ec2types.InstanceStateNameRunning:
		return machinestate.Running
	case ec2types.InstanceStateNameStopping:
		return machinestate.Stopping
	case ec2types.InstanceStateNameStopped:
		return machinestate.Stopped
	case ec2types.InstanceStateNameShuttingDown:
		return machinestate.Terminating
	case ec2types.InstanceStateNameTerminated:
		return machinestate.Terminated
	}
	return machinestate.Unknown
}

// Machine controls one EC2 instance, named by its metadata's id, with the
// credential's keys.
type Machine struct {
	*provider.BaseMachine
	opts Options
}

var _ provider.Machine = (*Machine)(nil)

// metadata returns a copy of the machine's stored metadata (a fresh one
// when none).
func (m *Machine) metadata() *Metadata {
	md := &Metadata{}
	if stored, ok := m.Metadata.(*Metadata); ok && stored != nil {
		*md = *stored
	}
	md.derive()
	return md
}

// target returns the machine's client, metadata and instance id. The
// instance's own region (from its metadata) wins over the credential's.
func (m *Machine) target() (*ec2.Client, *Metadata, error) {
	md := m.metadata()
	if md.ID == "" {
		label := ""
		if m.BaseMachine.Machine != nil {
			label = " " + m.BaseMachine.Machine.ID
		}
		return nil, md, fmt.Errorf("aws machine%s: %w", label, ErrNoInstanceID)
	}
	cred, ok := m.Cred.(*Credential)
	if !ok || cred == nil {
		return nil, md, fmt.Errorf("aws machine %s: no aws credential", md.ID)
	}
	c := *cred
	if md.Region != "" && Region(md.Region).Valid() {
		c.Region = Region(md.Region)
	}
	if md.Region == "" {
		md.Region = string(c.Region)
	}
	return m.opts.ec2Client(&c), md, nil
}

// describe returns the instance as EC2 sees it now.
func (m *Machine) describe(ctx context.Context, client *ec2.Client, id string) (*ec2types.Instance, error) {
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return nil, classify(ctx, "EC2 DescribeInstances", err)
	}
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == id {
				return &r.Instances[i], nil
			}
		}
	}
	return nil, &callError{kind: ErrInstanceNotFound, msg: fmt.Sprintf("EC2 DescribeInstances: no instance %s in the answer", id), err: ErrInstanceNotFound}
}

// refresh copies what EC2 says of the instance into md.
func refresh(md *Metadata, in *ec2types.Instance) {
	md.ID = aws.ToString(in.InstanceId)
	md.AMI = aws.ToString(in.ImageId)
	md.InstanceType = string(in.InstanceType)
	md.PublicIP = aws.ToString(in.PublicIpAddress)
	md.PrivateIP = aws.ToString(in.PrivateIpAddress)
	if in.Placement != nil && in.Placement.AvailabilityZone != nil {
		md.AvailabilityZone = aws.ToString(in.Placement.AvailabilityZone)
	}
	if in.State != nil {
		md.InstanceState = string(in.State.Name)
	}
	md.derive()
}

// Info reports the instance's state from DescribeInstances, with the
// metadata refreshed (a stopped and started instance has a new public
// IP). An instance EC2 does not know (InvalidInstanceID.NotFound, as some
// time after termination) and a machine never built are NotInitialized.
func (m *Machine) Info(ctx context.Context) (machinestate.State, any, error) {
	client, md, err := m.target()
	if errors.Is(err, ErrNoInstanceID) {
		return machinestate.NotInitialized, md, nil
	}
	if err != nil {
		return machinestate.Unknown, nil, err
	}
	in, err := m.describe(ctx, client, md.ID)
	if errors.Is(err, ErrInstanceNotFound) {
		md.InstanceState, md.PublicIP, md.PrivateIP = "", "", ""
		return machinestate.NotInitialized, md, nil
	}
	if err != nil {
		return machinestate.Unknown, nil, fmt.Errorf("aws machine info %s: %w", md.ID, err)
	}
	refresh(md, in)
	var name ec2types.InstanceStateName
	if in.State != nil {
		name = in.State.Name
	}
	return StateOf(name), md, nil
}

// Start starts a stopped instance (StartInstances) and waits until it
// runs; starting a pending or running instance only waits.
func (m *Machine) Start(ctx context.Context) (any, error) {
	client, md, err := m.target()
	if err != nil {
		return nil, fmt.Errorf("start aws machine: %w", err)
	}
	return m.change(ctx, client, md, "EC2 StartInstances", func(ctx context.Context) error {
		_, err := client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{md.ID}})
		return err
	}, ec2types.InstanceStateNameRunning, m.opts.StartTimeout)
}

// Stop stops a running instance (StopInstances) and waits until it is
// stopped; stopping a stopping or stopped instance only waits.
func (m *Machine) Stop(ctx context.Context) (any, error) {
	client, md, err := m.target()
	if err != nil {
		return nil, fmt.Errorf("stop aws machine: %w", err)
	}
	return m.change(ctx, client, md, "EC2 StopInstances", func(ctx context.Context) error {
		_, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{md.ID}})
		return err
	}, ec2types.InstanceStateNameStopped, m.opts.StopTimeout)
}

// waiting lists, for each target state, the states the instance may pass
// through (or still show, EC2 being eventually consistent) on its way.
var waiting = map[ec2types.InstanceStateName][]ec2types.InstanceStateName{
	ec2types.InstanceStateNameRunning: {ec2types.InstanceStateNamePending, ec2types.InstanceStateNameStopping, ec2types.InstanceStateNameStopped},
	ec2types.InstanceStateNameStopped: {ec2types.InstanceStateNameStopping, ec2types.InstanceStateNamePending, ec2types.InstanceStateNameRunning},
}

// change runs the action, retrying it while it fails transiently, then
// polls DescribeInstances until the instance is in target, all within
// timeout. The SDK retries each call on throttling and 5xx; a call that
// still fails transiently doubles the wait before the next one (up to
// MaxPollInterval) instead of failing the operation.
func (m *Machine) change(ctx context.Context, client *ec2.Client, md *Metadata, op string, action func(context.Context) error, target ec2types.InstanceStateName, timeout time.Duration) (any, error) {
	verb := map[ec2types.InstanceStateName]string{ec2types.InstanceStateNameRunning: "start", ec2types.InstanceStateNameStopped: "stop"}[target]
	fail := func(err error) (any, error) { return md, fmt.Errorf("%s aws machine %s: %w", verb, md.ID, err) }
	deadline := m.opts.Now().Add(timeout)
	acted := false
	last := ec2types.InstanceStateName("")
	var lastErr error
	w := newBackoff(m.opts)
	for {
		var err error
		if !acted {
			if err = classify(ctx, op, action(ctx)); err == nil {
				acted = true
			}
		}
		if acted {
			var in *ec2types.Instance
			if in, err = m.describe(ctx, client, md.ID); err == nil {
				refresh(md, in)
				if in.State != nil {
					last = in.State.Name
				}
				switch {
				case last == target:
					return md, nil
				case last != "" && !slices.Contains(waiting[target], last):
					return fail(fmt.Errorf("%w: it is %s, waiting for %s", ErrUnexpectedState, last, target))
				}
			}
		}
		if err != nil {
			if !transient(err) {
				return fail(err)
			}
			lastErr = err
		}
		delay := w.next(err != nil)
		left := deadline.Sub(m.opts.Now())
		if left <= 0 {
			detail := ""
			switch {
			case last != "":
				detail = fmt.Sprintf(" (last seen %s)", last)
			case lastErr != nil:
				detail = fmt.Sprintf(" (last error: %v)", lastErr)
			}
			return fail(fmt.Errorf("%w: %s did not reach %s within %s%s", ErrTimeout, md.ID, target, timeout, detail))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-m.opts.After(min(delay, left)):
		}
	}
}

// backoff is the wait between polls: PollInterval, doubled after each
// failed call up to MaxPollInterval, back to PollInterval after a success.
type backoff struct {
	opts Options
	cur  time.Duration
}

func newBackoff(o Options) *backoff { return &backoff{opts: o} }

func (b *backoff) next(failed bool) time.Duration {
	switch {
	case !failed:
		b.cur = b.opts.PollInterval
	case b.cur == 0:
		b.cur = min(2*b.opts.PollInterval, b.opts.MaxPollInterval)
	default:
		b.cur = min(2*b.cur, b.opts.MaxPollInterval)
	}
	return b.cur
}
