package policy

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalidPolicy is matched by every *[InvalidPolicyError].
	ErrInvalidPolicy = errors.New("invalid policy")
	// ErrInvalidConfig is matched by every *[ConfigError].
	ErrInvalidConfig = errors.New("invalid policy engine config")
	// ErrInvalidEndpoint is returned for an endpoint or node that cannot be used (no ID, no
	// namespace, labels that are not valid Kubernetes labels, an identity that contradicts one
	// the engine already knows for the same labels).
	ErrInvalidEndpoint = errors.New("invalid endpoint")
	// ErrNotFound is returned for an endpoint, node or policy the engine does not know.
	ErrNotFound = errors.New("not found")
	// ErrOverflow is matched by every *[OverflowError].
	ErrOverflow = errors.New("policy map capacity exceeded")
)

// InvalidPolicyError lists everything wrong with one policy, each with its field path and value
// (for example spec.ingress[0].from[1].ipBlock.except[0]). A policy with any error is rejected as
// a whole: nothing of it is applied.
type InvalidPolicyError struct {
	Policy PolicyRef
	Errs   field.ErrorList
}

// Error names the policy and every field error.
func (e *InvalidPolicyError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Policy, e.Errs.ToAggregate().Error())
}

// Is makes errors.Is(err, ErrInvalidPolicy) true.
func (e *InvalidPolicyError) Is(target error) bool { return target == ErrInvalidPolicy }

// ConfigError reports a bad [Config] field with its value.
type ConfigError struct {
	Field  string
	Value  string
	Reason string
}

// Error describes the field, its value and the rule it breaks.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid policy engine config: %s=%s: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// OverflowError reports an endpoint whose policy needs more map entries than the capacity. The
// endpoint's map state is then fail-closed (deny everything) rather than partial.
type OverflowError struct {
	Endpoint string
	Needed   int
	Capacity int
}

// Error gives the endpoint, the entries needed and the capacity.
func (e *OverflowError) Error() string {
	return fmt.Sprintf("policy map capacity exceeded for endpoint %s: needs %d entries, capacity %d; the endpoint denies all traffic until policies shrink or the capacity grows",
		e.Endpoint, e.Needed, e.Capacity)
}

// Is makes errors.Is(err, ErrOverflow) true.
func (e *OverflowError) Is(target error) bool { return target == ErrOverflow }
