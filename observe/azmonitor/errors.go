package azmonitor

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalidConfig is matched by every *[ConfigError].
	ErrInvalidConfig = errors.New("invalid azmonitor config")
	// ErrClosed is returned by calls made after [Exporter.Close].
	ErrClosed = errors.New("azmonitor exporter closed")
	// ErrBufferFull is returned by [Exporter.Export] under [DropNewest] when the buffer is full:
	// the record was dropped and counted in [Stats].Dropped.
	ErrBufferFull = errors.New("azmonitor buffer full, record dropped")
	// ErrInvalidRecord is returned for a record that is not a JSON object. Nothing is buffered.
	ErrInvalidRecord = errors.New("azmonitor record is not a JSON object")
	// ErrRecordTooLarge is returned for a record that does not fit in one batch of
	// [Config].MaxBatchBytes. Nothing is buffered.
	ErrRecordTooLarge = errors.New("azmonitor record larger than a batch")
	// ErrRunning is returned by a second concurrent call of [Exporter.Run].
	ErrRunning = errors.New("azmonitor exporter already running")
)

// ConfigError reports a bad [Config] field with its value.
type ConfigError struct {
	Field  string
	Value  string
	Reason string
}

// Error describes the field, its value and the rule it breaks.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid azmonitor config: %s=%s: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// UnsentError is returned by [Exporter.Flush] and [Exporter.Close] when their context ended
// before every buffered record was uploaded. It unwraps to the context's error.
type UnsentError struct {
	// Records is the number of records not uploaded. Close counts them in [Stats].Failed;
	// Flush leaves them buffered.
	Records int
	// Err is the context's error.
	Err error
}

// Error gives the count and the cause.
func (e *UnsentError) Error() string {
	return fmt.Sprintf("azmonitor: %d records not uploaded: %v", e.Records, e.Err)
}

// Unwrap returns the context's error.
func (e *UnsentError) Unwrap() error { return e.Err }
