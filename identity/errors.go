package identity

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalidConfig is matched by every *[ConfigError].
	ErrInvalidConfig = errors.New("invalid identity config")
	// ErrExhausted is matched by every *[ExhaustedError]: no numeric identity is free in the
	// configured range.
	ErrExhausted = errors.New("identity space exhausted")
	// ErrNotHeld is returned by [CRDAllocator.Release] for an identity this allocator does not
	// hold.
	ErrNotHeld = errors.New("identity not held by this allocator")
	// ErrNotSynced is returned by calls that need the allocator's caches before they are synced.
	ErrNotSynced = errors.New("identity allocator not synced yet")
	// ErrClaimConflict is returned when the claim Lease for a label set holds a different label
	// set: a SHA-256 collision or a Lease written by something other than ceskit.
	ErrClaimConflict = errors.New("identity claim holds a different label set")
	// ErrCRDMissing is returned by Run when the API server does not serve CiliumIdentities.
	ErrCRDMissing = errors.New("CiliumIdentity resource not served")
)

// ConfigError reports a bad [Config] or [GCConfig] field with its value.
type ConfigError struct {
	Field  string
	Value  string
	Reason string
}

// Error describes the field, its value and the rule it breaks.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid identity config: %s=%s: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// ExhaustedError reports that every numeric identity of Range is in use, with the usage.
type ExhaustedError struct {
	// Range is the allocatable range.
	Range Range
	// Used is the number of identities of Range that exist as CiliumIdentities.
	Used int
	// Claimed is the number of further identities of Range reserved by an allocation claim whose
	// CiliumIdentity does not exist (yet).
	Claimed int
}

// Error gives the range and its usage.
func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("identity space exhausted: range %s has %d identities, %d in use, %d more claimed",
		e.Range, e.Range.Size(), e.Used, e.Claimed)
}

// Is makes errors.Is(err, ErrExhausted) true.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }
