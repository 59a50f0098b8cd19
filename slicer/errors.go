package slicer

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalidConfig is matched by every *[ConfigError].
	ErrInvalidConfig = errors.New("invalid slicer config")
	// ErrInvalidEndpoint is matched by every *[EndpointError].
	ErrInvalidEndpoint = errors.New("invalid endpoint")
	// ErrCRDMissing is returned by [Controller.Run] when the API server does not serve the
	// CiliumEndpointSlice (or, with SourceCiliumEndpoints, the CiliumEndpoint) resource.
	ErrCRDMissing = errors.New("custom resource not served")
	// ErrNotSynced is returned by calls that need the controller's caches before they are synced.
	ErrNotSynced = errors.New("slicer controller not synced yet")
)

// ConfigError reports a bad [Config] field with its value.
type ConfigError struct {
	Field  string
	Value  string
	Reason string
}

// Error describes the field, its value and the rule it breaks.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid slicer config: %s=%s: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// EndpointError reports an endpoint (CiliumEndpoint or Pod) that cannot go into a slice, naming
// the object, the field and the value. The controller keeps the endpoint's last valid state in
// its slice, if it had one, and lists the error in [Status].InvalidEndpoints.
type EndpointError struct {
	// Endpoint is "namespace/name".
	Endpoint string
	// Field is the JSON path of the bad field, e.g. "status.networking.addressing[0].ipv4".
	Field  string
	Value  string
	Reason string
}

// Error names the endpoint, the field, its value and the rule it breaks.
func (e *EndpointError) Error() string {
	return fmt.Sprintf("invalid endpoint %s: %s=%q: %s", e.Endpoint, e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidEndpoint) true.
func (e *EndpointError) Is(target error) bool { return target == ErrInvalidEndpoint }
