package kloud

import (
	"fmt"
	"strconv"
	"time"

	"github.com/kloud/kloud/client"
	"github.com/kloud/kloud/internal/jsonenc"
)

// machineSize is about the length of one machine in a list, to size the
// buffer of a page at once.
const machineSize = 512

// appendMachines appends vs as encoding/json encodes a []client.Machine,
// byte for byte, without reflection: a page of the machine list is encoded
// once a second per filter and page (listcache), and reflection was most
// of that. TestMachineJSON compares the two on every field and on values
// encoding/json refuses.
func appendMachines(b []byte, vs []client.Machine) ([]byte, error) {
	if vs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendMachine(b, &vs[i]); err != nil {
			return nil, fmt.Errorf("encode machine %s: %w", vs[i].ID, err)
		}
	}
	return append(b, ']'), nil
}

// appendMachine appends v as encoding/json encodes a client.Machine.
func appendMachine(b []byte, v *client.Machine) ([]byte, error) {
	if !v.State.Valid() {
		return nil, fmt.Errorf("invalid state %d", int(v.State))
	}
	b = append(b, `{"id":`...)
	b = jsonenc.String(b, v.ID)
	b = append(b, `,"stack_id":`...)
	b = jsonenc.String(b, v.StackID)
	b = append(b, `,"owner_id":`...)
	b = jsonenc.String(b, v.OwnerID)
	b = append(b, `,"label":`...)
	b = jsonenc.String(b, v.Label)
	b = append(b, `,"provider":`...)
	b = jsonenc.String(b, v.Provider)
	b = append(b, `,"state":`...)
	b = jsonenc.String(b, v.State.String())
	b = append(b, `,"reason":`...)
	b = jsonenc.String(b, v.Reason)
	b = append(b, `,"always_on":`...)
	b = strconv.AppendBool(b, v.AlwaysOn)
	b = append(b, `,"metadata":`...)
	b, err := jsonenc.Raw(b, v.Metadata)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	b = append(b, `,"uptime_seconds":`...)
	b = strconv.AppendInt(b, v.UptimeSeconds, 10)
	if b, err = optionalTime(b, `,"last_seen":`, v.LastSeen); err != nil {
		return nil, err
	}
	b = append(b, `,"agent":{"status":`...)
	b = jsonenc.String(b, v.Agent.Status)
	if b, err = optionalTime(b, `,"last_seen_at":`, v.Agent.LastSeenAt); err != nil {
		return nil, err
	}
	if v.Agent.Version != "" {
		b = append(b, `,"version":`...)
		b = jsonenc.String(b, v.Agent.Version)
	}
	b = append(b, '}')
	for _, t := range []struct {
		key string
		at  *time.Time
	}{{`,"next_autostart":`, v.NextAutostart}, {`,"next_autostop":`, v.NextAutostop}, {`,"last_activity_at":`, v.LastActivityAt}} {
		if b, err = optionalTime(b, t.key, t.at); err != nil {
			return nil, err
		}
	}
	if v.Shared {
		b = append(b, `,"shared":true`...)
	}
	if v.Permission != "" {
		b = append(b, `,"permission":`...)
		b = jsonenc.String(b, v.Permission)
	}
	return append(b, '}'), nil
}

// optionalTime appends key and t unless t is nil (omitempty).
func optionalTime(b []byte, key string, t *time.Time) ([]byte, error) {
	if t == nil {
		return b, nil
	}
	b, err := jsonenc.Time(append(b, key...), *t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key[2:len(key)-2], err)
	}
	return b, nil
}
