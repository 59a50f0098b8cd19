package slicer

import (
	"context"
	"sync"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// writeLimiter charges one token per API write. Its limit follows the node-count step table.
type writeLimiter struct {
	clock clock.WithTicker
	steps []RateLimitStep // sorted by Nodes, first at 0

	mu     sync.Mutex
	active RateLimitStep
	lim    *rate.Limiter
}

func newWriteLimiter(clk clock.WithTicker, steps []RateLimitStep) *writeLimiter {
	w := &writeLimiter{clock: clk, steps: steps, active: steps[0]}
	w.lim = rate.NewLimiter(rate.Limit(steps[0].Limit), steps[0].Burst)
	return w
}

// setNodes picks the step for a node count.
func (w *writeLimiter) setNodes(n int) {
	step := w.steps[0]
	for _, s := range w.steps {
		if s.Nodes <= n {
			step = s
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if step == w.active {
		return
	}
	w.active = step
	now := w.clock.Now()
	w.lim.SetLimitAt(now, rate.Limit(step.Limit))
	w.lim.SetBurstAt(now, step.Burst)
}

func (w *writeLimiter) current() RateLimitStep {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active
}

// wait blocks until a write may be made or ctx ends.
func (w *writeLimiter) wait(ctx context.Context) error {
	now := w.clock.Now()
	r := w.lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d <= 0 {
		return nil
	}
	t := w.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		r.CancelAt(w.clock.Now())
		return ctx.Err()
	}
}
