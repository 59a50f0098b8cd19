package chaos

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Runner is a long-running component: [slicer.Controller], [slicer.Watcher],
// [identity.CRDAllocator], [identity.GC]. Run blocks until ctx ends and returns after every
// goroutine it started has stopped.
//
// [slicer.Controller]: https://pkg.go.dev/github.com/ceskit/ceskit/slicer#Controller
// [slicer.Watcher]: https://pkg.go.dev/github.com/ceskit/ceskit/slicer#Watcher
// [identity.CRDAllocator]: https://pkg.go.dev/github.com/ceskit/ceskit/identity#CRDAllocator
// [identity.GC]: https://pkg.go.dev/github.com/ceskit/ceskit/identity#GC
type Runner interface {
	Run(ctx context.Context) error
}

// Proc runs one instance of a component at a time, so that a test can kill it at any point and
// start a fresh one, as a crash and a restart of its process would. Components whose Run may be
// called once get a new instance from the constructor at every start. An instance whose Run
// returns by itself (it crashed, say on an error at start) is replaced after [CrashBackoff], as
// a kubelet restarts a container; [Proc.Crashes] counts those. Proc is safe for concurrent use.
type Proc[T Runner] struct {
	newFn func() (T, error)
	in    *Injector

	mu        sync.Mutex
	cur       T
	cancel    context.CancelFunc
	done      chan error
	starts    int
	kills     int
	crashes   int
	lastCrash error
}

// CrashBackoff is how long a [Proc] waits before it replaces an instance that crashed.
const CrashBackoff = 200 * time.Millisecond

// NewProc returns a stopped Proc whose instances newFn builds. When in is not nil it is the
// injector of the instances' clients: Kill sets it down before stopping the instance, so the
// instance dies without a last word to the API server, and Start brings it up again.
func NewProc[T Runner](in *Injector, newFn func() (T, error)) *Proc[T] {
	return &Proc[T]{newFn: newFn, in: in}
}

// ErrRunning is returned by [Proc.Start] when an instance is already running.
var ErrRunning = errors.New("chaos: component already running")

// Start builds a new instance and runs it in the background.
func (p *Proc[T]) Start() (T, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var zero T
	if p.done != nil {
		return zero, ErrRunning
	}
	if p.in != nil {
		p.in.SetDown(false)
	}
	inst, err := p.newFn()
	if err != nil {
		return zero, fmt.Errorf("chaos: new instance: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	p.cur, p.cancel, p.done = inst, cancel, done
	p.starts++
	go p.supervise(ctx, inst, done)
	return inst, nil
}

// supervise runs inst until ctx ends, replacing it when it crashes, and then sends the last
// Run's error on done.
func (p *Proc[T]) supervise(ctx context.Context, inst T, done chan<- error) {
	for {
		err := inst.Run(ctx)
		if ctx.Err() != nil {
			done <- err
			return
		}
		p.mu.Lock()
		p.crashes++
		p.lastCrash = err
		p.mu.Unlock()
		for {
			t := time.NewTimer(CrashBackoff)
			select {
			case <-ctx.Done():
				t.Stop()
				done <- nil
				return
			case <-t.C:
			}
			p.mu.Lock()
			if ctx.Err() != nil {
				p.mu.Unlock()
				done <- nil
				return
			}
			next, err := p.newFn()
			if err != nil {
				p.crashes++
				p.lastCrash = fmt.Errorf("new instance: %w", err)
				p.mu.Unlock()
				continue
			}
			inst, p.cur = next, next
			p.starts++
			p.mu.Unlock()
			break
		}
	}
}

// Kill stops the running instance abruptly and waits for its Run to return, whose error it
// returns. Killing a stopped Proc does nothing.
func (p *Proc[T]) Kill() error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel, p.done = nil, nil
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	if p.in != nil {
		p.in.SetDown(true)
	}
	cancel()
	err := <-done
	p.mu.Lock()
	p.kills++
	p.mu.Unlock()
	return err
}

// Restart is Kill then Start.
func (p *Proc[T]) Restart() (T, error) {
	if err := p.Kill(); err != nil {
		var zero T
		return zero, fmt.Errorf("chaos: kill: %w", err)
	}
	return p.Start()
}

// Current returns the running instance (while a crashed one waits to be replaced: the crashed
// one), or the zero T and false when the Proc is stopped.
func (p *Proc[T]) Current() (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		var zero T
		return zero, false
	}
	return p.cur, true
}

// Starts counts the instances started, replacements of crashed ones included.
func (p *Proc[T]) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Kills counts the instances killed.
func (p *Proc[T]) Kills() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kills
}

// Crashes counts the instances whose Run returned by itself, and the last one's error.
func (p *Proc[T]) Crashes() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashes, p.lastCrash
}

// Await calls check every interval until it reports no violation, ctx ends or timeout passes,
// and returns how long that took and check's last violations (sorted; none when it converged).
// A check error counts as a violation and is retried.
func Await(ctx context.Context, timeout, interval time.Duration, check func(context.Context) ([]string, error)) (time.Duration, []string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last []string
	for {
		v, err := check(ctx)
		if err != nil {
			v = append(v, "check: "+err.Error())
		}
		if len(v) == 0 {
			return time.Since(start), nil
		}
		if ctx.Err() == nil || last == nil {
			last = v // a check cut short by the deadline says less than the one before
		}
		select {
		case <-ctx.Done():
			sort.Strings(last)
			return time.Since(start), last
		case <-time.After(interval):
		}
	}
}
