// Package retry runs a start-up check until it succeeds or fails for good: what the slicer's
// controller and the identity allocator and collector do before they start their informers,
// so that one failed discovery read (an API server restarting, a 500, a dropped connection)
// does not end them.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Backoff is the schedule between attempts: First, doubled after each failure up to Max.
type Backoff struct {
	First, Max time.Duration
}

// DefaultBackoff is 100ms, 200ms, 400ms, … up to 5s.
var DefaultBackoff = Backoff{First: 100 * time.Millisecond, Max: 5 * time.Second}

// Until calls attempt until it returns nil, or an error for which permanent reports true (that
// error is returned at once), or ctx ends (ctx's error is returned, wrapping the last attempt's
// error in its message). Each failure is logged at warning level with what, the attempt number
// and the wait before the next one. A zero Backoff means DefaultBackoff.
func Until(ctx context.Context, log *slog.Logger, what string, b Backoff, attempt func(context.Context) error, permanent func(error) bool) error {
	if b.First <= 0 {
		b = DefaultBackoff
	}
	if b.Max < b.First {
		b.Max = b.First
	}
	wait := b.First
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if permanent != nil && permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last %s error: %v)", ctx.Err(), what, err)
		}
		log.Warn(what+" failed; retrying", "attempt", n, "retryIn", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last %s error: %v)", ctx.Err(), what, err)
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}

// Is returns a permanent func for Until that reports whether an error wraps target.
func Is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}
