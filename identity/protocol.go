package identity

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/ceskit/ceskit/identity/ciliumv2"
)

// resolveOnce runs resolve for key once per process at a time: concurrent callers for the same
// key wait for the first one and share its result.
func (a *CRDAllocator) resolveOnce(ctx context.Context, key string, lbls Labels) (NumericIdentity, string, error) {
	a.mu.Lock()
	if f := a.flights[key]; f != nil {
		a.mu.Unlock()
		select {
		case <-f.done:
			return f.id, f.out, f.err
		case <-ctx.Done():
			return 0, "", context.Cause(ctx)
		}
	}
	f := &flight{done: make(chan struct{})}
	a.flights[key] = f
	a.mu.Unlock()
	f.id, f.out, f.err = a.resolve(ctx, key, lbls)
	a.mu.Lock()
	delete(a.flights, key)
	a.mu.Unlock()
	close(f.done)
	return f.id, f.out, f.err
}

// resolve finds or creates the one identity of key: first from the cache, then through protocol
// rounds until one wins or MaxAttempts rounds lost a race.
func (a *CRDAllocator) resolve(ctx context.Context, key string, lbls Labels) (NumericIdentity, string, error) {
	a.mu.RLock()
	ids := a.keys[key]
	var k *knownIdentity
	if len(ids) == 1 {
		k = a.known[ids[0]]
	}
	a.mu.RUnlock()
	// The cache answers alone only for an identity that has existed a while: a fresh one may be
	// the creation of a round that is about to lose its verification and delete it again.
	if k != nil && a.cfg.Clock.Since(k.created) >= freshAge {
		id := ids[0]
		if k.obj.Annotations[HeartbeatAnnotation] == "" {
			return id, "cached", nil
		}
		err := a.unmark(ctx, k.obj)
		if err == nil {
			return id, "reused", nil
		}
		if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, "", err
		}
	}
	if len(ids) > 0 {
		// Known but fresh, or duplicated: the claim decides, one read.
		if id, outcome, ok := a.byClaim(ctx, key); ok {
			return id, outcome, nil
		}
	}
	var lastErr error
	backoff := 5 * time.Millisecond
	for attempt := range a.cfg.MaxAttempts {
		if attempt > 0 {
			// Jittered exponential backoff, capped at 500 ms: a lost race means another
			// allocator is writing the same objects right now.
			d := backoff/2 + rand.N(backoff)
			select {
			case <-ctx.Done():
				return 0, "", fmt.Errorf("allocate identity for %q: %w (last: %w)", key, context.Cause(ctx), lastErr)
			case <-a.cfg.Clock.After(d):
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
		id, outcome, err := a.round(ctx, key, lbls)
		if err == nil {
			return id, outcome, nil
		}
		if !errors.Is(err, errLostRace) && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) &&
			!apierrors.IsAlreadyExists(err) && !isTransient(err) {
			return 0, "", err
		}
		lastErr = err
	}
	return 0, "", fmt.Errorf("allocate identity for %q: gave up after %d rounds: %w", key, a.cfg.MaxAttempts, lastErr)
}

// byClaim answers from the claim and the cache when the claim points at an identity of key the
// cache holds, unmarked: one read. ok is false when a full round is needed.
func (a *CRDAllocator) byClaim(ctx context.Context, key string) (NumericIdentity, string, bool) {
	l, err := a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace).Get(ctx, ClaimName(key), metav1.GetOptions{})
	if err != nil {
		return 0, "", false
	}
	c, err := a.checkClaim(l, key)
	if err != nil {
		return 0, "", false
	}
	a.mu.RLock()
	k := a.known[c.id]
	a.mu.RUnlock()
	if k == nil || k.key != key || k.obj.Annotations[HeartbeatAnnotation] != "" {
		return 0, "", false
	}
	return c.id, "cached", true
}

// isTransient reports errors worth another round: API errors that say "later" (timeouts, 429,
// 503, 500) and failed connections (a timeout, a refused or reset connection, a stream cut short,
// as while the API server restarts). A write whose response was lost may have been applied; the
// next round reads the claim and finds it, as after a lost race. The rounds stop when ctx ends.
func isTransient(err error) bool {
	if apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's context: not the server's fault
	}
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) || utilnet.IsConnectionRefused(err) ||
		utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err)
}

// round is one round of the allocation protocol (see the package documentation):
//
//  1. claim: create the claim Lease of key pointing at a candidate ID, or read the existing one;
//  2. identity: create the CiliumIdentity the claim points at; if it exists with the same labels,
//     use it (unmarking it); if it exists with other labels, move the claim to a free ID and lose
//     the round;
//  3. verify: read the claim again; if it points elsewhere now, delete the identity this round
//     created and lose the round. A missing claim (collected meanwhile) is created again.
//
// It returns errLostRace (or an API conflict) when another allocator won a race.
func (a *CRDAllocator) round(ctx context.Context, key string, lbls Labels) (NumericIdentity, string, error) {
	c, err := a.claim(ctx, key)
	if err != nil {
		return 0, "", err
	}
	x := c.id
	outcome := "reused"
	var createdUID types.UID
	var cur *ciliumv2.CiliumIdentity
	a.mu.RLock()
	k := a.known[x]
	cached := k != nil && k.key == key
	a.mu.RUnlock()
	if cached {
		// Known to exist: no create that would fail. Should the cache be behind a deletion,
		// the holder's repair re-creates the identity through the protocol.
		cur = k.obj
	}
	if cur == nil {
		cid, err := a.createIdentity(ctx, x, lbls)
		switch {
		case err == nil:
			createdUID, outcome = cid.UID, "created"
		case apierrors.IsAlreadyExists(err):
			if cur, err = a.client.CiliumIdentities().Get(ctx, x.String(), metav1.GetOptions{}); err != nil {
				return 0, "", fmt.Errorf("get identity %s: %w", x, err)
			}
		default:
			return 0, "", fmt.Errorf("create identity %s: %w", x, err)
		}
	}
	if cur != nil {
		curLabels, err := LabelsFromSecurityLabels(cur.SecurityLabels)
		if err != nil || curLabels.Key() != key {
			a.cfg.Metrics.Conflict("identity")
			if err := a.moveClaim(ctx, c, x); err != nil {
				return 0, "", err
			}
			return 0, "", errLostRace
		}
		if cur.Annotations[HeartbeatAnnotation] != "" {
			if err := a.unmark(ctx, cur); err != nil {
				return 0, "", err
			}
		}
	}

	// Verify: the claim is the authority. Identities are only ever created for the ID a claim
	// pointed at when it was read; if it moved since, the identity just created is a duplicate
	// in the making and goes away before anyone is told about it.
	l, err := a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace).Get(ctx, ClaimName(key), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// The collector deleted the claim while the identity was gone; put it back.
		l, err = a.createClaim(ctx, key, x)
		if err == nil {
			return x, outcome, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, "", err
		}
		l, err = a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace).Get(ctx, ClaimName(key), metav1.GetOptions{})
		if err != nil {
			return 0, "", fmt.Errorf("get claim for %q: %w", key, err)
		}
	case err != nil:
		return 0, "", fmt.Errorf("get claim for %q: %w", key, err)
	}
	now, err := claimFromLease(l)
	if err != nil {
		return 0, "", err
	}
	if now.id == x {
		return x, outcome, nil
	}
	a.cfg.Metrics.Conflict("claim")
	if createdUID != "" {
		if err := a.deleteIdentity(ctx, x, createdUID, ""); err != nil && !apierrors.IsNotFound(err) {
			return 0, "", fmt.Errorf("delete superseded identity %s: %w", x, err)
		}
	}
	return 0, "", errLostRace
}

// claim returns the claim of key, creating it when there is none. A new claim points at the
// oldest existing identity of key (one a Cilium agent created, say), or else at a free ID.
func (a *CRDAllocator) claim(ctx context.Context, key string) (claim, error) {
	a.mu.RLock()
	var candidate NumericIdentity
	ids := a.keys[key]
	exists := len(ids) > 0
	if exists {
		candidate = ids[0]
	}
	a.mu.RUnlock()
	if candidate == 0 {
		var err error
		if candidate, err = a.pickFree(0); err != nil {
			return claim{}, err
		}
	}
	leases := a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace)
	if exists {
		// The key has an identity, so most likely a claim: read before trying to create.
		l, err := leases.Get(ctx, ClaimName(key), metav1.GetOptions{})
		if err == nil {
			return a.checkClaim(l, key)
		}
		if !apierrors.IsNotFound(err) {
			return claim{}, fmt.Errorf("get claim for %q: %w", key, err)
		}
	}
	l, err := a.createClaim(ctx, key, candidate)
	if apierrors.IsAlreadyExists(err) {
		if !exists {
			a.unpick(candidate)
		}
		a.cfg.Metrics.Conflict("claim")
		l, err = leases.Get(ctx, ClaimName(key), metav1.GetOptions{})
		if err != nil {
			return claim{}, fmt.Errorf("get claim for %q: %w", key, err)
		}
	} else if err != nil {
		if !exists {
			a.unpick(candidate)
		}
		return claim{}, fmt.Errorf("create claim for %q: %w", key, err)
	}
	return a.checkClaim(l, key)
}

// checkClaim decodes a claim Lease and checks that it is the claim of key.
func (a *CRDAllocator) checkClaim(l *coordinationv1.Lease, key string) (claim, error) {
	c, err := claimFromLease(l)
	if err != nil {
		return claim{}, err
	}
	if c.key != key {
		return claim{}, fmt.Errorf("%w: claim %s holds %q, want %q", ErrClaimConflict, l.Name, c.key, key)
	}
	return c, nil
}

func (a *CRDAllocator) createClaim(ctx context.Context, key string, id NumericIdentity) (*coordinationv1.Lease, error) {
	l := newClaimLease(a.cfg.Namespace, key, id, a.cfg.Holder, a.cfg.Clock.Now())
	out, err := a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace).Create(ctx, l, metav1.CreateOptions{})
	if err == nil || apierrors.IsAlreadyExists(err) {
		a.cfg.Metrics.Write("create", "leases")
	}
	return out, err
}

// moveClaim points c at a free ID because taken, the ID it points at, belongs to other labels.
// Losing the update to another allocator is fine: the next round reads whatever won.
func (a *CRDAllocator) moveClaim(ctx context.Context, c claim, taken NumericIdentity) error {
	next, err := a.pickFree(taken)
	if err != nil {
		return err
	}
	l := c.lease.DeepCopy()
	l.Labels[ClaimIDLabel] = next.String()
	t := metav1.NewMicroTime(a.cfg.Clock.Now())
	l.Spec.RenewTime = &t
	l.Spec.HolderIdentity = &a.cfg.Holder
	_, err = a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace).Update(ctx, l, metav1.UpdateOptions{})
	a.cfg.Metrics.Write("update", "leases")
	switch {
	case err == nil:
		a.log.Debug("moved identity claim", "identity", next, "taken", taken)
		return nil
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		a.unpick(next)
		a.cfg.Metrics.Conflict("update")
		return nil
	default:
		a.unpick(next)
		return fmt.Errorf("move claim %s to %s: %w", l.Name, next, err)
	}
}

// pickFree reserves a random ID of the range that no known identity uses and no other local
// allocation is about to take. It returns an *ExhaustedError when there is none.
func (a *CRDAllocator) pickFree(exclude NumericIdentity) (NumericIdentity, error) {
	r := a.cfg.Range
	n := r.Size()
	now := a.cfg.Clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) > 1024 {
		for id, exp := range a.pending {
			if !now.Before(exp) {
				delete(a.pending, id)
			}
		}
	}
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		off := (start + i) % n
		if off%64 == 0 && off+64 <= n && a.used[off/64] == ^uint64(0) {
			i += 63 // a full word
			continue
		}
		id := r.Min + NumericIdentity(off)
		if id == exclude || a.isUsed(id) {
			continue
		}
		if exp, ok := a.pending[id]; ok && now.Before(exp) {
			continue
		}
		a.pending[id] = now.Add(pendingTTL)
		return id, nil
	}
	return 0, &ExhaustedError{Range: r, Used: a.usedN}
}

func (a *CRDAllocator) unpick(id NumericIdentity) {
	a.mu.Lock()
	delete(a.pending, id)
	a.mu.Unlock()
}

func (a *CRDAllocator) createIdentity(ctx context.Context, id NumericIdentity, lbls Labels) (*ciliumv2.CiliumIdentity, error) {
	cid := &ciliumv2.CiliumIdentity{
		ObjectMeta:     metav1.ObjectMeta{Name: id.String()},
		SecurityLabels: lbls.SecurityLabels(),
	}
	// Cilium's CRD backend copies only the namespace into metadata.labels.
	if ns := lbls.Namespace(); ns != "" {
		cid.Labels = map[string]string{LabelNamespace: ns}
	}
	out, err := a.client.CiliumIdentities().Create(ctx, cid, metav1.CreateOptions{})
	a.cfg.Metrics.Write("create", "ciliumidentities")
	if err == nil {
		a.mu.Lock()
		a.setUsed(id, true)
		a.mu.Unlock()
	}
	return out, err
}

// unmark removes the garbage collector's mark from cid. The update carries cid's
// resourceVersion, and the collector deletes with a resourceVersion precondition, so whichever
// of the two comes second fails: a reused identity is never deleted.
func (a *CRDAllocator) unmark(ctx context.Context, cid *ciliumv2.CiliumIdentity) error {
	c := cid.DeepCopy()
	delete(c.Annotations, HeartbeatAnnotation)
	_, err := a.client.CiliumIdentities().Update(ctx, c, metav1.UpdateOptions{})
	a.cfg.Metrics.Write("update", "ciliumidentities")
	if apierrors.IsConflict(err) {
		a.cfg.Metrics.Conflict("update")
	}
	if err != nil {
		return fmt.Errorf("unmark identity %s: %w", cid.Name, err)
	}
	return nil
}

func (a *CRDAllocator) deleteIdentity(ctx context.Context, id NumericIdentity, uid types.UID, rv string) error {
	pre := &metav1.Preconditions{UID: &uid}
	if rv != "" {
		pre.ResourceVersion = &rv
	}
	err := a.client.CiliumIdentities().Delete(ctx, id.String(), metav1.DeleteOptions{Preconditions: pre})
	a.cfg.Metrics.Write("delete", "ciliumidentities")
	return err
}
