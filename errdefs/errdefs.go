// Package errdefs declares the sentinel errors Kloud's packages share: the
// store returns them, the domain packages (jobs, hashmap rules) wrap them,
// and the HTTP layer maps them to statuses in one place. It imports nothing
// of Kloud's, so any package can use it without linking persistence.
package errdefs

import "errors"

var (
	// ErrNotFound: no record with that key (or not visible to that owner).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule or an invariant refused the write
	// (duplicate name, an active job on the same target, a credential in use).
	ErrConflict = errors.New("conflict")
	// ErrLeaseHeld: another holder owns the lease and it has not expired.
	ErrLeaseHeld = errors.New("lease held by another holder")
	// ErrStaleSerial: a Terraform state serial that does not increase.
	ErrStaleSerial = errors.New("state serial does not increase")
	// ErrInvalid: a value that cannot be taken (empty key, bad enum, nil).
	ErrInvalid = errors.New("invalid value")
	// ErrJobCancelled: a job's lease was renewed, but the job was asked to
	// stop; its worker ends it with the job's cancel reason.
	ErrJobCancelled = errors.New("job cancelled")
)
