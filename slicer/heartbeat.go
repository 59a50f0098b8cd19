package slicer

import (
	"context"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultHeartbeatLease is the Lease the [Controller] renews and the [Watcher] reads by default.
const DefaultHeartbeatLease = "kube-system/ceskit-slicer"

// Heartbeat annotations on the controller's Lease.
const (
	// StateAnnotation holds the controller's state: [StateSyncing] until every slice has been
	// written once since the start, then [StateReady]; [StateDegraded] while Degraded;
	// [StateStopped] after Run returned. Only ready slices are complete.
	StateAnnotation = "ceskit.io/slicer-state"
	// ReasonAnnotation holds why the controller is Degraded.
	ReasonAnnotation = "ceskit.io/slicer-reason"

	StateSyncing  = "syncing"
	StateReady    = "ready"
	StateDegraded = "degraded"
	StateStopped  = "stopped"
)

func splitLease(s string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(s, "/")
	if !ok || namespace == "" || name == "" {
		return "", "", fmt.Errorf(`must be "namespace/name"`)
	}
	for _, part := range []string{namespace, name} {
		if errs := validation.IsDNS1123Subdomain(part); len(errs) > 0 {
			return "", "", fmt.Errorf("%q: %s", part, strings.Join(errs, "; "))
		}
	}
	return namespace, name, nil
}

// heartbeat renews the controller's Lease until ctx ends, then marks it stopped.
func (c *Controller) heartbeat(ctx context.Context) {
	if c.cfg.Shadow || c.cfg.HeartbeatLease == "-" {
		return
	}
	ns, name, _ := splitLease(c.cfg.HeartbeatLease)
	t := c.cfg.Clock.NewTicker(c.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		state, reason := c.heartbeatState()
		if err := c.renew(ctx, ns, name, state, reason); err != nil && ctx.Err() == nil {
			c.log.Warn("renew heartbeat lease", "lease", c.cfg.HeartbeatLease, "error", err)
		}
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = c.renew(stopCtx, ns, name, StateStopped, "controller stopped")
			cancel()
			return
		case <-t.C():
		case <-c.beat:
		}
	}
}

// renew writes the heartbeat Lease, and keeps the single-writer guard: it takes the Lease when
// nobody holds it, the holder marked it stopped, or the holder's renewal expired
// (LeaseDurationSeconds); it stands by, writing nothing, while another live identity holds it.
func (c *Controller) renew(ctx context.Context, ns, name, state, reason string) error {
	api := c.client.Kube.CoordinationV1().Leases(ns)
	nowT := c.cfg.Clock.Now()
	now := metav1.NewMicroTime(nowT)
	seconds := int32(c.cfg.HeartbeatInterval.Seconds() * 3)
	me := c.cfg.WriterIdentity
	lease, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		lease.Annotations = map[string]string{StateAnnotation: state, ReasonAnnotation: reason}
		lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: &me, LeaseDurationSeconds: &seconds, RenewTime: &now}
		_, err = api.Create(ctx, lease, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // another controller created it first; the next renewal looks at it
		}
		if err == nil {
			c.renewed(nowT)
		}
		return err
	}
	if err != nil {
		return err
	}
	if holder := lease.Spec.HolderIdentity; holder != nil && *holder != me && *holder != "" &&
		lease.Annotations[StateAnnotation] != StateStopped && lease.Spec.RenewTime != nil &&
		lease.Spec.LeaseDurationSeconds != nil &&
		nowT.Before(lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds)*time.Second)) {
		c.setWriting(false, *holder)
		return nil
	}
	if state == StateStopped && (lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != me) {
		return nil // never held it: nothing to hand over
	}
	lease = lease.DeepCopy()
	if lease.Annotations == nil {
		lease.Annotations = map[string]string{}
	}
	lease.Annotations[StateAnnotation], lease.Annotations[ReasonAnnotation] = state, reason
	lease.Spec.HolderIdentity = &me
	lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds = &now, &seconds
	_, err = api.Update(ctx, lease, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil // someone else renewed it meanwhile; the next renewal looks again
	}
	if err == nil && state != StateStopped {
		c.renewed(nowT)
	}
	return err
}

// renewed records a successful renewal as the holder, taken at now.
func (c *Controller) renewed(now time.Time) {
	c.mu.Lock()
	could := c.mayWrite()
	c.renewedAt = now
	c.mu.Unlock()
	c.setWriting(true, "")
	if !could {
		// Writes were held back while the guard was stale: write what differs now.
		c.requeueOutOfSync()
	}
}

// mayWrite reports whether this controller may write slices now: it holds the writer guard and
// renewed it within 2 × HeartbeatInterval, a third of the Lease's duration before another
// controller may take it over, so a holder cut off from the API server stops writing before
// the stand-by starts. c.mu is held.
func (c *Controller) mayWrite() bool {
	if c.cfg.HeartbeatLease == "-" {
		return true
	}
	return c.writing && c.cfg.Clock.Since(c.renewedAt) < 2*c.cfg.HeartbeatInterval
}

// setWriting records whether this controller holds the writer guard. Taking it over from
// another writer queues every slice that differs from the model (the informers kept the cache current).
func (c *Controller) setWriting(writing bool, holder string) {
	c.mu.Lock()
	was := c.writing
	c.writing, c.otherWriter = writing, holder
	c.mu.Unlock()
	switch {
	case writing && !was:
		c.log.Info("holding the slice writer guard", "lease", c.cfg.HeartbeatLease, "identity", c.cfg.WriterIdentity)
		c.requeueOutOfSync()
	case !writing && was:
		c.log.Warn("another controller writes the slices; standing by", "lease", c.cfg.HeartbeatLease, "holder", holder)
	}
}

func ptrTo[T any](v T) *T { return &v }

// heartbeatState is the state the lease reports. Once every slice is in sync and nothing is
// queued, the controller counts as converged until it stops.
func (c *Controller) heartbeatState() (state, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.degraded {
		return StateDegraded, c.degradedWhy
	}
	if !c.converged {
		if c.queue.Len() > 0 {
			return StateSyncing, "slices being written"
		}
		for _, s := range c.m.slices {
			if !c.m.inSync(s) {
				return StateSyncing, "slices being written"
			}
		}
		c.converged = true
	}
	return StateReady, ""
}
