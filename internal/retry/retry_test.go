package retry

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errGone = errors.New("gone")

func TestUntil(t *testing.T) {
	quick := Backoff{First: time.Millisecond, Max: 4 * time.Millisecond}
	t.Run("succeeds after transient failures", func(t *testing.T) {
		n := 0
		err := Until(t.Context(), slog.New(slog.DiscardHandler), "discovery", quick, func(context.Context) error {
			n++
			if n < 4 {
				return errors.New("500")
			}
			return nil
		}, Is(errGone))
		if err != nil || n != 4 {
			t.Fatalf("Until = %v after %d attempts, want nil after 4", err, n)
		}
	})
	t.Run("permanent error at once", func(t *testing.T) {
		n := 0
		err := Until(t.Context(), slog.New(slog.DiscardHandler), "discovery", quick, func(context.Context) error {
			n++
			return errGone
		}, Is(errGone))
		if !errors.Is(err, errGone) || n != 1 {
			t.Fatalf("Until = %v after %d attempts, want errGone after 1", err, n)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		n := 0
		err := Until(ctx, slog.New(slog.DiscardHandler), "discovery", quick, func(context.Context) error {
			n++
			return errors.New("connection refused")
		}, nil)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last discovery error: connection refused") || n < 2 {
			t.Fatalf("Until = %v after %d attempts, want the deadline naming the last error, after several attempts", err, n)
		}
	})
	t.Run("backoff doubles up to max", func(t *testing.T) {
		var at []time.Time
		_ = Until(t.Context(), slog.New(slog.DiscardHandler), "x", Backoff{First: 10 * time.Millisecond, Max: 20 * time.Millisecond}, func(context.Context) error {
			at = append(at, time.Now())
			if len(at) == 4 {
				return nil
			}
			return errors.New("e")
		}, nil)
		want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
		for i, w := range want {
			if got := at[i+1].Sub(at[i]); got < w {
				t.Errorf("wait %d = %s, want at least %s", i+1, got, w)
			}
		}
	})
}
